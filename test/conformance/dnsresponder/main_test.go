package main

import (
	"net/netip"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

func query(t *testing.T, name string, typ dnsmessage.Type, response bool) []byte {
	t.Helper()
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 42, Response: response, RecursionDesired: true})
	if err := b.StartQuestions(); err != nil {
		t.Fatal(err)
	}
	if err := b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(name), Type: typ, Class: dnsmessage.ClassINET}); err != nil {
		t.Fatal(err)
	}
	out, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestAnswer(t *testing.T) {
	client := netip.MustParseAddrPort("10.251.0.7:53000")
	var msg dnsmessage.Message

	// Names in the zone: the client's own address, as coredns' whoami answers.
	for _, name := range []string{"foo.bar.com.", "x.Foo.Bar.com."} {
		if err := msg.Unpack(answer(query(t, name, dnsmessage.TypeA, false), client, "foo.bar.com.")); err != nil {
			t.Fatal(err)
		}
		if msg.ID != 42 || !msg.Response || msg.RCode != dnsmessage.RCodeSuccess || len(msg.Answers) != 1 {
			t.Fatalf("%s: header %+v, %d answers", name, msg.Header, len(msg.Answers))
		}
		if a, ok := msg.Answers[0].Body.(*dnsmessage.AResource); !ok || netip.AddrFrom4(a.A) != client.Addr() {
			t.Fatalf("%s: answer %v, want A %s", name, msg.Answers[0].Body, client.Addr())
		}
	}
	// AAAA for an IPv4 client: no answer, no error.
	if err := msg.Unpack(answer(query(t, "foo.bar.com.", dnsmessage.TypeAAAA, false), client, "foo.bar.com.")); err != nil || msg.RCode != dnsmessage.RCodeSuccess || len(msg.Answers) != 0 {
		t.Fatalf("AAAA: %v rcode %v answers %d", err, msg.RCode, len(msg.Answers))
	}
	// Other names are refused: there is nothing to forward to.
	if err := msg.Unpack(answer(query(t, "example.com.", dnsmessage.TypeA, false), client, "foo.bar.com.")); err != nil || msg.RCode != dnsmessage.RCodeRefused {
		t.Fatalf("other name: %v rcode %v", err, msg.RCode)
	}
	// Responses and garbage get no answer.
	if out := answer(query(t, "foo.bar.com.", dnsmessage.TypeA, true), client, "foo.bar.com."); out != nil {
		t.Fatalf("answered a response: %x", out)
	}
	if out := answer([]byte{1, 2, 3}, client, "foo.bar.com."); out != nil {
		t.Fatalf("answered garbage: %x", out)
	}
}
