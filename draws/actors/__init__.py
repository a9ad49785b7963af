"""Every actor, in one shape: a class built from the Context (and its options) with ``run()``.

The scripts at the project's root parse their arguments, build their actor
and call ``run()``; the Pipeline Driver and the mocked Pipeline, started per
OUS, are run as ``python -m draws.actors.pipeline_driver`` and
``python -m draws.actors.pipeline``.
"""
