# make reproduce [PROFILE=cpu] [ARGS="--set k=v"]   set up, then run the reproduction
# make test                                         set up, check notebook/package sync, run the fast tier of the tests
# make test-all                                     the same with the slow checks too (what CI runs)
# make docs [PROFILE=cpu]                           set up, reproduce (cached stages skipped), build the site in _docs/
# make lab [PORT=8888]                              set up, register the project's kernel, start JupyterLab on nbs/
PROFILE ?= cpu
ARGS ?=

.PHONY: setup reproduce test test-all docs lab
setup:
	bash scripts/setup.sh
reproduce:
	bash scripts/reproduce.sh --profile $(PROFILE) $(ARGS)
test:
	bash scripts/test.sh
test-all:
	bash scripts/test.sh --all

docs:
	PROFILE=$(PROFILE) bash scripts/docs.sh

lab:
	bash scripts/lab.sh
