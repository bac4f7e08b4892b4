# The two commands of the README, and the quality gate. Each does its own set-up.
.PHONY: run test check fix venv kafka-fetch clean

run: venv
	.venv/bin/voicepulse run

test:
	scripts/test

check:
	scripts/check

fix:
	scripts/check --fix

venv:
	scripts/venv

kafka-fetch:
	scripts/kafka/kafka fetch

clean:
	rm -rf .venv .mypy_cache .ruff_cache .pytest_cache .hypothesis
