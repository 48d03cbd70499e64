# make reproduce [PROFILE=cpu] [ARGS="--set k=v"]   set up, then run the reproduction
# make test                                         set up, check notebook/package sync, run the tests
PROFILE ?= cpu
ARGS ?=

.PHONY: setup reproduce test
setup:
	bash scripts/setup.sh
reproduce:
	bash scripts/reproduce.sh --profile $(PROFILE) $(ARGS)
test:
	bash scripts/test.sh
