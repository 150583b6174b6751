import os
import shutil

import pytest

# A test that needs a system component may skip on a machine that lacks it, but never under CI=true, where
# .ci/run has installed everything: there a skip would hide a missing install step.
IN_CI = os.environ.get("CI", "").lower() == "true"


def require_executable(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        if IN_CI:
            pytest.fail(f"{name} is not installed, but CI=true: .ci/run must install it")
        pytest.skip(f"{name} is not installed")
    return path


@pytest.fixture(autouse=True, scope="session")
def _single_thread_torch():
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(1)
