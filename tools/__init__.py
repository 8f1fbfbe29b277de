"""Developer scripts that are not tests: regenerate the committed snapshot and docs, render the reliability report."""
