"""An example sbcore plugin: a data source (`spiral`), a network (`gated_mlp`), a reference process
(`quadratic`) and a method (`power_time`)."""
