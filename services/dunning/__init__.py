"""The dunning service: reminders, fees, late interest, debt-collection notices and hand-off to
collection by Norwegian and Swedish law — never to a customer who has paid."""
