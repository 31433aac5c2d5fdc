"""The core: lifecycle, options, hooks, sockets, protocols. Plugins build on it."""
