"""An example sbcore plugin: registers the `spiral` data source."""
