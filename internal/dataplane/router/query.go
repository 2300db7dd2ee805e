package router

import (
	"net/url"
	"strings"
)

// queryValue returns the first value of name in a raw query string, decoding only when
// the pair is escaped, so the common case allocates nothing.
func queryValue(raw, name string) (string, bool) {
	for raw != "" {
		var pair string
		pair, raw, _ = strings.Cut(raw, "&")
		if pair == "" {
			continue
		}
		key, value, _ := strings.Cut(pair, "=")
		if strings.ContainsAny(key, "%+") {
			k, err := url.QueryUnescape(key)
			if err != nil {
				continue
			}
			key = k
		}
		if key != name {
			continue
		}
		if strings.ContainsAny(value, "%+") {
			v, err := url.QueryUnescape(value)
			if err != nil {
				return "", false
			}
			value = v
		}
		return value, true
	}
	return "", false
}
