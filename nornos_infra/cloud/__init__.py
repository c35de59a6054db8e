"""The cloud layer: desired state from the spec, observed state by label, the plan, its apply."""
