# Two commands that work on a fresh machine (Python 3.10+ with venv):
#   make demo   install, download the weights, fetch sample photos into People/ and images/, enroll, annotate
#   make test   install and run the test suite (pytest) with the real weights and real photos
.PHONY: demo test install

install:
	scripts/bootstrap

demo: install
	.venv/bin/facebatch download-weights
	.venv/bin/python -m tools.sample_data People images
	.venv/bin/facebatch enroll People/
	.venv/bin/facebatch annotate images/

test: install
	.venv/bin/python -m pytest -q tests
