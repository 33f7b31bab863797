"""Predictive CLV and timing (issue 19, docs/predictions.md).

`models`: BG/NBD, Gamma-Gamma and sBG fitted with pymc-marketing (MAP, flat priors).
`score`: the nightly fit on the marts, writing `predict.customer_scores` for the dbt mart
`marts.customer_predictions`, and the hold-out check the nightly report shows.
"""
