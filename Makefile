# The two commands a newcomer needs:
#   make run    set up, train if needed, start everything, load the synthetic demo data, chat
#   make test   set up, then the whole test suite (unit, Redis integration, Rasa checks, end to end)
PB := .venv/bin/patientbot

.PHONY: setup run up down status train test demo-data bench

setup:
	@bash scripts/setup.sh

run: up
	@$(PB) demo-data
	@$(PB) chat

# make up SCALE=2: two gateways, Rasa servers and action servers on one Redis (README, Scale-out)
up: setup
	@$(PB) up $(if $(SCALE),--scale $(SCALE))

down:
	@if [ -x $(PB) ]; then $(PB) down; fi

status:
	@$(PB) status

train: setup
	@$(PB) train

demo-data: setup
	@$(PB) demo-data

test: setup
	@.venv/bin/python -m pytest -ra

# The benchmark against stock Rasa (bench/compare.py): its own stack and ports; results/bench.md and .png
bench: setup
	@.venv/bin/python bench/compare.py $(if $(LEVELS),--levels $(LEVELS))
