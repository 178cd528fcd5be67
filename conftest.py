"""Root pytest configuration: doctests get ``torch`` in their namespace."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _doctest_torch(doctest_namespace):
    doctest_namespace["torch"] = torch
