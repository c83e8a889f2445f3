"""Remote predictor back-ends: services reached over HTTP."""
