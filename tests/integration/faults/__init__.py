"""Fault injection: real workers, real databases and a real receiver, broken on purpose.

Every scenario ends with `invariants.assert_invariants` and prints one figures line. Sizes
come from `scale.scaled`: `OUTBOX_FAULTS_SCALE=long` (`make test-faults-long`) runs bigger.
"""
