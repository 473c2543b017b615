"""Study tools: how gradients travel through time in a real layer.

For one layer of one direction (``RNN``, ``GRU`` or ``LSTM`` with
``num_layers=1``), built from the cells' own step derivatives
(:mod:`.steps`: the cell's backward fed basis vectors):

* :func:`step_jacobians`, :func:`jacobians`, :func:`jacobian_norms`,
  :func:`by_distance` -- ∂s_t/∂s_s through time and its spectral norm;
* :func:`rtrl_gradients` -- real-time recurrent learning, the forward-mode
  gradient, equal to BPTT's; :func:`rtrl_vs_bptt_cost`, :func:`cost_table`
  -- what each costs, measured;
* :func:`truncation_bias`, :func:`chunked_gradient` -- what truncated BPTT
  gives up, per truncation length.

The notebooks in ``notebooks/`` walk through them.
"""

from .jacobians import by_distance, jacobian_norms, jacobians, step_jacobians
from .rtrl import CostRow, cost_table, rtrl_gradients, rtrl_vs_bptt_cost
from .steps import MAX_BYTES, step_derivatives
from .truncation import TruncationResult, chunked_gradient, flat_gradient, truncation_bias

__all__ = [
    "MAX_BYTES", "step_derivatives", "step_jacobians", "jacobians", "jacobian_norms",
    "by_distance", "rtrl_gradients", "rtrl_vs_bptt_cost", "cost_table", "CostRow",
    "truncation_bias", "TruncationResult", "chunked_gradient", "flat_gradient",
]
