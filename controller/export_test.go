package controller

// PrefixSample exposes prefixSample to the external tests.
var PrefixSample = prefixSample
