"""The dunning service's outward formats: the collection agency's export file."""
