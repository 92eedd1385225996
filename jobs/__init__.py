"""Command-line entry points (python -m jobs.<name>); the logic lives in operators/, index/, vipwatch/."""
