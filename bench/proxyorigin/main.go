// Command proxyorigin is bench/proxy.sh's Go origin: net/http answering
// every request with the same 64-byte body, keep-alive on.
package main

import (
	"log"
	"net/http"
	"os"
)

func main() {
	if len(os.Args) != 2 {
		log.Fatal("usage: proxyorigin ADDR")
	}
	body := []byte("hello from origin, a small response body of 64 bytes..........\n")
	log.Fatal(http.ListenAndServe(os.Args[1], http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write(body)
	})))
}
