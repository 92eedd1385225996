"""Core floor: typed config, storage access, output schema and small helpers. Imports nothing of vipwatch's own packages."""
