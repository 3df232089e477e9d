"""Pure core: typed, no Nova, oslo, CONF or I/O."""
