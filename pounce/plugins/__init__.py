"""Built-in plugins. Each is an ordinary pounce plugin registered through
pounce's own ``pounce.plugins`` entry points."""
