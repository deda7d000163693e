"""Compare's worker processes and numba's threads."""
import multiprocessing as mp

import numba
import pytest

from twin.runs.experiment import _worker_init


def _compile_in_worker(_):
    @numba.njit
    def plus_one(x):  # a function no cache holds: the worker compiles it
        return x + 1

    return plus_one(1), numba.get_num_threads()


@pytest.mark.slow
def test_a_forked_worker_can_compile_a_kernel():
    """A worker that misses the numba cache compiles; numba then re-reads its settings from the
    environment, which must not contradict the threads it already launched (it raised RuntimeError
    "Cannot set NUMBA_NUM_THREADS to a different value" in every run of a first compare)."""
    numba.get_num_threads()  # the parent has numba's threads, as the CLI has after checks
    with mp.get_context("fork").Pool(2, initializer=_worker_init, initargs=(1,)) as pool:
        assert pool.map(_compile_in_worker, range(2)) == [(2, 1), (2, 1)]
