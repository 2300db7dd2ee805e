package proxy

import "testing"

func TestCleanPath(t *testing.T) {
	for in, want := range map[string]string{
		"/a/b":             "/a/b",
		"/a/b/":            "/a/b/",
		"/public/../admin": "/admin",
		"/a//b":            "/a/b",
		"/a/./b/":          "/a/b/",
		"/..":              "/",
		"/a/..":            "/",
		"/a/b/..":          "/a",
		"":                 "/",
		"a/b":              "/a/b",
	} {
		if got, _ := cleanPath(in); got != want {
			t.Errorf("cleanPath(%q) = %q, want %q", in, got, want)
		}
	}
	if _, changed := cleanPath("/fine/path/"); changed {
		t.Error("a clean path was reported as changed")
	}
}
