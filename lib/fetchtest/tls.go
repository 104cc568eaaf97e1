package fetchtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"time"
)

// NewTLS starts a Server that speaks HTTPS on a random port of 127.0.0.1,
// HTTP/2 where the client offers it (HTTP/1.1 otherwise). Its certificate,
// for 127.0.0.1, ::1 and localhost, is signed by a CA made for this server
// alone, whose certificate is CAPEM: a client that is not given it cannot
// verify the server. (Client() trusts it; faults that hijack the connection,
// reset and truncate, need HTTP/1.1.)
func NewTLS() (*Server, error) {
	caPEM, cert, err := newCertificates()
	if err != nil {
		return nil, err
	}
	s := newServer()
	s.CAPEM = caPEM
	s.EnableHTTP2 = true
	s.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	s.Config.ErrorLog = log.New(io.Discard, "", 0) // a client that does not trust it is expected
	s.StartTLS()
	return s, nil
}

// newCertificates makes a CA and a server certificate signed by it; it
// returns the CA's certificate in PEM and the server's key pair.
func newCertificates() (caPEM []byte, cert tls.Certificate, err error) {
	fail := func(err error) ([]byte, tls.Certificate, error) {
		return nil, tls.Certificate{}, fmt.Errorf("fetchtest: make certificates: %w", err)
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fail(err)
	}
	now := time.Now()
	ca := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "fetchtest CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(7 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		return fail(err)
	}
	if ca, err = x509.ParseCertificate(caDER); err != nil {
		return fail(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fail(err)
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "fetchtest"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(7 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	if err != nil {
		return fail(err)
	}
	caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	return caPEM, tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
