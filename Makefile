# make reproduce [PROFILE=cpu] [ARGS="--set k=v"]   set up, then run the reproduction
# make test                                         set up, check notebook/package sync, run the tests
# make docs [PROFILE=cpu]                           set up, reproduce (cached stages skipped), build the site in _docs/
PROFILE ?= cpu
ARGS ?=

.PHONY: setup reproduce test docs
setup:
	bash scripts/setup.sh
reproduce:
	bash scripts/reproduce.sh --profile $(PROFILE) $(ARGS)
test:
	bash scripts/test.sh

docs:
	PROFILE=$(PROFILE) bash scripts/docs.sh
