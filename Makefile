# The README's two commands. Each installs what it needs into .venv first.
export RAY_USAGE_STATS_ENABLED=0
export AWS_EC2_METADATA_DISABLED=true

.PHONY: demo test install
install:
	infra/install.sh

demo: install
	.venv/bin/python -m jobs.demo

test: install
	.venv/bin/python -m pytest -q -rs --durations=15
