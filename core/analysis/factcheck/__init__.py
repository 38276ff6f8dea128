"""Fact-check reports: evidence measured without a model, three checks judged by engines, a
suggested rating and a person's rating beside it. The flow is `flow.run_factcheck`; the report's
shape is `report.FactCheckReport`; exports are `html`, `jsonld` and `text`."""
