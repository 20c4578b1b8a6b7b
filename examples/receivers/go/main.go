// A webhook receiver for stile in Go (1.19 or later), with nothing but the standard
// library. It verifies each delivery's `stile-signature` header against the raw body,
// refuses a timestamp more than five minutes from now, answers 200 at once, and handles
// each event once (retries and resends reuse the event's id).
//
//	cd examples/receivers/go && STILE_WEBHOOK_SECRET=whsec_... go run .
//
// Listens on 127.0.0.1:$PORT (3000 by default; 0 takes a free port) at /webhooks.
package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

const tolerance = 5 * time.Minute

// Event is the part of a delivered event this receiver reads.
type Event struct {
	ID   string          `json:"id"`
	Type string          `json:"type"`
	Data json.RawMessage `json:"data"`
}

// Verify checks header (`t=<unix seconds>,v1=<hex>[,v1=<hex>]`) against the raw body:
// each v1 is HMAC-SHA256 of "<t>." followed by the body, keyed with the whole whsec_
// secret. During a secret rotation the header carries one v1 per secret; one match is
// enough.
func Verify(body []byte, header, secret string, now time.Time) (Event, error) {
	var timestamp string
	var signatures [][]byte
	for _, part := range strings.Split(header, ",") {
		name, value, _ := strings.Cut(part, "=")
		switch name {
		case "t":
			timestamp = value
		case "v1":
			if sig, err := hex.DecodeString(value); err == nil {
				signatures = append(signatures, sig)
			}
		}
	}
	seconds, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return Event{}, errors.New("no timestamp in stile-signature")
	}
	if age := now.Sub(time.Unix(seconds, 0)); age > tolerance || age < -tolerance {
		return Event{}, errors.New("timestamp too old or too new")
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(timestamp + "."))
	mac.Write(body)
	expected := mac.Sum(nil)
	for _, sig := range signatures {
		if hmac.Equal(sig, expected) {
			var event Event
			if err := json.Unmarshal(body, &event); err != nil {
				return Event{}, fmt.Errorf("not an event: %w", err)
			}
			return event, nil
		}
	}
	return Event{}, errors.New("no signature matches")
}

func main() {
	secret := os.Getenv("STILE_WEBHOOK_SECRET")
	if secret == "" {
		log.Fatal("set STILE_WEBHOOK_SECRET to the endpoint's secret (whsec_...)")
	}
	port := os.Getenv("PORT")
	if port == "" {
		port = "3000"
	}
	// Event ids already handled. A real receiver keeps them in its database, with the
	// work the event caused, so a retry after a crash is still recognised.
	var mu sync.Mutex
	seen := map[string]bool{}

	http.HandleFunc("/webhooks", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		event, err := Verify(body, r.Header.Get("stile-signature"), secret, time.Now())
		if err != nil {
			fmt.Printf("rejected: %v\n", err)
			http.Error(w, "invalid signature", http.StatusBadRequest)
			return
		}
		// Answer first; do the work after (a slow answer is a failed delivery, retried).
		w.WriteHeader(http.StatusOK)
		mu.Lock()
		duplicate := seen[event.ID]
		seen[event.ID] = true
		mu.Unlock()
		if duplicate {
			fmt.Printf("duplicate %s\n", event.ID)
			return
		}
		fmt.Printf("verified %s %s\n", event.ID, event.Type)
	})
	listener, err := net.Listen("tcp", "127.0.0.1:"+port)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("listening on http://%s/webhooks\n", listener.Addr())
	log.Fatal(http.Serve(listener, nil))
}
