package download

// Lookup is lookup, for the black-box tests.
func (n *Netrc) Lookup(host, login string, withDefault bool) (user, password string, ok bool) {
	return n.lookup(host, login, withDefault)
}
