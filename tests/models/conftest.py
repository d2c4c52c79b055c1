"""Shared by the loss tests: float64 tensors (`pytestmark = usefixtures("float64")`)."""

import pytest
import torch


@pytest.fixture
def float64():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)
