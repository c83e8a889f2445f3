"""The tools: record prints, replay them through the rule, tune the rule, plot it."""
