// Command labd runs one site of the replicator.vsphere lab: govmomi's vcsim
// in-process, behind a SOAP front end that adds CBT, QueryChangedDiskAreas,
// snapshot data and consolidation (see tests/lab/README.md). vcsim keeps its
// state in a global registry, so each site is its own process.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25"
)

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return n
	}
	return def
}

// writeReady tells labctl the address once the site answers (atomic rename).
func writeReady(dir string, addr *net.TCPAddr) error {
	b, _ := json.Marshal(map[string]interface{}{"pid": os.Getpid(), "host": addr.IP.String(), "port": addr.Port})
	tmp := filepath.Join(dir, "ready.json.tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, "ready.json"))
}

func main() {
	site := flag.String("site", "source", "site to run: source (vCenter) or target (ESXi host)")
	workdir := flag.String("workdir", "", "directory for this site's datastores (required)")
	listen := flag.String("listen", "127.0.0.1:0", "address to serve on")
	user := flag.String("username", "administrator@vsphere.local", "login user name (password from LAB_PASSWORD)")
	maxExtents := flag.Int("qcda-max-extents", envInt("LAB_QCDA_MAX_EXTENTS", 64), "extents per QueryChangedDiskAreas reply")
	scale := flag.Int("disk-scale", envInt("LAB_DISK_SCALE", 100), "percent of the default source disk sizes")
	deferAll := flag.Bool("defer-consolidate", os.Getenv("LAB_DEFER_CONSOLIDATE") == "1", "leave deltas on snapshot removal")
	flag.Parse()
	password := os.Getenv("LAB_PASSWORD")
	if *workdir == "" || password == "" || (*site != "source" && *site != "target") {
		log.Fatal("usage: labd --site source|target --workdir DIR (LAB_PASSWORD set)")
	}

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	model := newModel(*site)
	if err := model.Create(); err != nil {
		log.Fatal(err)
	}
	l := newLab(*site, *maxExtents, *deferAll)
	ctx := context.Background()
	client, err := vim25.NewClient(ctx, model.Service)
	if err != nil {
		log.Fatal(err)
	}
	if err := l.setupSite(ctx, client, filepath.Join(*workdir, "datastores"), int64(*scale)); err != nil {
		log.Fatalf("setup: %v", err)
	}
	model.Service.Listen = &url.URL{User: url.UserPassword(*user, password)}
	srv := model.Service.NewServer() // registers /sdk, /folder, ... on ServeMux
	// clients must be sent to our listener, not vcsim's own
	simulator.Map.SessionManager().ServiceHostName = ln.Addr().String()

	certFile, keyFile := filepath.Join(*workdir, "cert.pem"), filepath.Join(*workdir, "key.pem")
	if err := writeCert(certFile, keyFile); err != nil {
		log.Fatal(err)
	}
	httpSrv := &http.Server{Handler: &front{mux: model.Service.ServeMux, lab: l}}
	go func() {
		if err := httpSrv.ServeTLS(ln, certFile, keyFile); err != nil && err != http.ErrServerClosed {
			log.Fatal(err)
		}
	}()
	log.Printf("labd %s serving on https://%s/sdk", *site, ln.Addr())
	if err := writeReady(*workdir, ln.Addr().(*net.TCPAddr)); err != nil {
		log.Fatal(err)
	}

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	_ = httpSrv.Close()
	srv.Close()
	log.Printf("labd %s stopped", *site)
}
