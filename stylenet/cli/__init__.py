"""Console scripts: one thin module per command (parse, call the layer below, map user errors to
one line and an exit code; see `stylenet.cli.common`)."""
