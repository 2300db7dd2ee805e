// Command dnsresponder stands in for the conformance suite's coredns pod (the harness
// cannot run its image). Like that pod's Corefile, it answers names under foo.bar.com
// with the asking client's own address (coredns' "whoami"); with no internet to forward
// to, it refuses every other name. It serves UDP and TCP on -addr (":53").
package main

import (
	"encoding/binary"
	"flag"
	"io"
	"log"
	"net"
	"net/netip"
	"strings"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

func main() {
	addr := flag.String("addr", ":53", "address to serve DNS on (UDP and TCP)")
	zone := flag.String("zone", "foo.bar.com.", "zone answered with the client's address")
	flag.String("conf", "", "ignored (coredns' Corefile flag)")
	flag.Parse()

	pc, err := net.ListenPacket("udp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("serving DNS on %s (udp, tcp); whoami zone %s", *addr, *zone)
	go serveTCP(ln, *zone)
	buf := make([]byte, 65535)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			log.Fatal(err)
		}
		ap, _ := netip.ParseAddrPort(from.String())
		if out := answer(buf[:n], ap, *zone); out != nil {
			_, _ = pc.WriteTo(out, from)
		}
	}
}

func serveTCP(ln net.Listener, zone string) {
	for {
		c, err := ln.Accept()
		if err != nil {
			log.Fatal(err)
		}
		go func() {
			defer c.Close()
			ap, _ := netip.ParseAddrPort(c.RemoteAddr().String())
			for {
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				var l [2]byte
				if _, err := io.ReadFull(c, l[:]); err != nil {
					return
				}
				msg := make([]byte, binary.BigEndian.Uint16(l[:]))
				if _, err := io.ReadFull(c, msg); err != nil {
					return
				}
				out := answer(msg, ap, zone)
				if out == nil {
					return
				}
				if _, err := c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(out))), out...)); err != nil {
					return
				}
			}
		}()
	}
}

// answer builds the response to one query; nil for a message that is not a query.
func answer(query []byte, client netip.AddrPort, zone string) []byte {
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil || h.Response {
		return nil
	}
	q, err := p.Question()
	if err != nil {
		return nil
	}
	resp := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired, RCode: dnsmessage.RCodeSuccess}
	name := strings.ToLower(q.Name.String())
	inZone := name == strings.ToLower(zone) || strings.HasSuffix(name, "."+strings.ToLower(zone))
	if !inZone {
		resp.RCode = dnsmessage.RCodeRefused
	}
	log.Printf("%s %s %s from %s: %s", q.Type, q.Class, name, client, resp.RCode)
	b := dnsmessage.NewBuilder(make([]byte, 0, 512), resp)
	b.EnableCompression()
	_ = b.StartQuestions()
	_ = b.Question(q)
	_ = b.StartAnswers()
	addr := client.Addr().Unmap()
	rh := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET}
	if inZone {
		switch {
		case q.Type == dnsmessage.TypeA && addr.Is4():
			_ = b.AResource(rh, dnsmessage.AResource{A: addr.As4()})
		case q.Type == dnsmessage.TypeAAAA && addr.Is6():
			_ = b.AAAAResource(rh, dnsmessage.AAAAResource{AAAA: addr.As16()})
		}
	}
	out, err := b.Finish()
	if err != nil {
		return nil
	}
	return out
}
