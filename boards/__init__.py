"""Board support: platforms, clocks and the UART harness around an amaranth-nn network."""
