# Two commands that work on a fresh machine (Python 3.10+ with venv):
#   make demo   install, download the weights, fetch sample photos into People/ and images/, enroll, annotate
#   make test   install and run the test suite (pytest) with the real weights and real photos
#               (pass pytest options with PYTEST_ARGS, for example: make test PYTEST_ARGS="-k xmp -x")
#   make clean  remove what the demo put in the data folders, and the virtualenv; the download cache stays
.PHONY: demo test install clean

PYTEST_ARGS ?=

install:
	scripts/bootstrap

demo: install
	.venv/bin/facebatch download-weights
	.venv/bin/python -m tools.sample_data People images
	.venv/bin/facebatch enroll People/
	.venv/bin/facebatch annotate images/

test: install
	.venv/bin/python -m pytest -q $(PYTEST_ARGS) tests

clean:
	find People images Infered_image DataBase Model -mindepth 1 ! -name README.md ! -name .facebatch-output -exec rm -rf {} +
	rm -rf .venv .pytest_cache build dist *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
