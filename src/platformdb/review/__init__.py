"""Schema review tools that read the live catalogs: the introspection reader, the text snapshot the drift tests
compare, the linter (``platformdb lint``) and the generated docs (``platformdb docs``)."""
