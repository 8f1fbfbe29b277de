"""The local workbench: the embedded PostgreSQL 18 server, the demo data set, the scalable seed and the parameter
samplers the benchmarks and plan checks use. Needs the ``embedded`` and ``cli`` extras; never run in production."""
