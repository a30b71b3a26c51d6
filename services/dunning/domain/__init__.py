"""The dunning service's rules: pure functions of their inputs (including "now"), no I/O.

`law` holds the Norwegian and Swedish limits as dated data, `interest` the late-payment interest,
`calendar` business days and sending windows, `policy` the tenants' dunning policies and the
validator that refuses an unlawful one, `schedule` the decision of an invoice's next step.
"""
