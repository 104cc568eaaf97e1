package objstore

// SetPartMD5Hook makes f see (and may change) the MD5 of every part before
// it is sent as Content-MD5 (part 0: a single PUT). It returns a function
// that removes the hook.
func SetPartMD5Hook(f func(part int32, sum []byte)) (restore func()) {
	testPartMD5 = f
	return func() { testPartMD5 = nil }
}

// SetAfterPartHook makes f run after each part of a multipart upload is in.
func SetAfterPartHook(f func(part int32)) (restore func()) {
	testAfterPart = f
	return func() { testAfterPart = nil }
}

// Classify exposes the classification of an HTTP status and S3 code.
func Classify(status int, code string) Class { return classify(status, code) }

// EncodeOwner exposes the metadata escaping of an owner.
func EncodeOwner(u string) string { return encodeOwner(u) }

// DecodeOwner exposes its inverse.
func DecodeOwner(v string) string { return decodeOwner(v) }

// NeedsPathStyle exposes the path-style rule.
func NeedsPathStyle(endpoint string) bool { return needsPathStyle(endpoint) }
