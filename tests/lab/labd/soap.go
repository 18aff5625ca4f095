package main

// SOAP front end. Every POST to /sdk is counted, then either answered here
// (QueryChangedDiskAreas, ConsolidateVMDisks_Task, FindAllByUuid), run through vcsim with a
// hook around it (snapshots, reconfigure, power, create/destroy), or passed
// straight through to vcsim with a panic guard.

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

var vimTypes = types.TypeFunc()

// envelope mirrors vcsim's unexported soapEnvelope (namespace prefix soapenv).
type envelope struct {
	XMLName xml.Name    `xml:"soapenv:Envelope"`
	Env     string      `xml:"xmlns:soapenv,attr"`
	XSD     string      `xml:"xmlns:xsd,attr"`
	XSI     string      `xml:"xmlns:xsi,attr"`
	Body    interface{} `xml:"soapenv:Body"`
}

// response encodes <NameResponse xmlns="urn:vim25"><returnval>..</returnval>.
type response struct {
	Name string
	Val  interface{}
}

func (r response) MarshalXML(e *xml.Encoder, start xml.StartElement) error {
	start.Name = xml.Name{Space: "urn:vim25", Local: r.Name + "Response"}
	if err := e.EncodeToken(start); err != nil {
		return err
	}
	if r.Val != nil {
		if err := e.EncodeElement(r.Val, xml.StartElement{Name: xml.Name{Local: "returnval"}}); err != nil {
			return err
		}
	}
	return e.EncodeToken(start.End())
}

// soapFault mirrors vcsim's soapFault; the detail element is <KindFault xsi:type="Kind">.
type soapFault struct {
	XMLName xml.Name `xml:"soapenv:Fault"`
	Code    string   `xml:"faultcode"`
	String  string   `xml:"faultstring"`
	Detail  struct {
		Fault faultDetail
	} `xml:"detail"`
}

type faultDetail struct{ Fault types.BaseMethodFault }

func (d faultDetail) MarshalXML(e *xml.Encoder, start xml.StartElement) error {
	kind := reflect.TypeOf(d.Fault).Elem().Name()
	start.Name = xml.Name{Local: kind + "Fault"}
	start.Attr = append(start.Attr,
		xml.Attr{Name: xml.Name{Local: "xmlns"}, Value: "urn:vim25"},
		xml.Attr{Name: xml.Name{Local: "xsi:type"}, Value: kind})
	return e.EncodeElement(d.Fault, start)
}

func writeEnvelope(w http.ResponseWriter, status int, body interface{}) {
	var out bytes.Buffer
	out.WriteString(xml.Header)
	err := xml.NewEncoder(&out).Encode(envelope{
		Env:  "http://schemas.xmlsoap.org/soap/envelope/",
		XSD:  "http://www.w3.org/2001/XMLSchema",
		XSI:  "http://www.w3.org/2001/XMLSchema-instance",
		Body: body,
	})
	if err != nil {
		log.Printf("encode: %v", err)
		status = http.StatusInternalServerError
	}
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(out.Bytes())
}

func writeResult(w http.ResponseWriter, name string, val interface{}) {
	writeEnvelope(w, http.StatusOK, response{Name: name, Val: val})
}

// faultText is the faultstring ESXi sends for the faults the lab raises itself.
func faultText(fault types.BaseMethodFault) string {
	switch f := fault.(type) {
	case *types.FileFault:
		return "Error caused by file " + f.File
	case *types.InvalidArgument:
		return "A specified parameter was not correct: " + f.InvalidProperty
	case *types.ManagedObjectNotFound:
		return "The object '" + f.Obj.Value + "' has already been deleted or has not been completely created"
	}
	return fmt.Sprintf("%T", fault)
}

func writeFault(w http.ResponseWriter, msg string, fault types.BaseMethodFault) {
	f := soapFault{Code: "ServerFaultCode", String: msg} // xml encoding escapes msg
	f.Detail.Fault = faultDetail{fault}
	writeEnvelope(w, http.StatusInternalServerError, f)
}

// methodName returns the local name of the first element inside soap Body.
func methodName(body []byte) string {
	d := xml.NewDecoder(bytes.NewReader(body))
	inBody := false
	for i := 0; i < 64; i++ {
		tok, err := d.Token()
		if err != nil {
			return "?"
		}
		if se, ok := tok.(xml.StartElement); ok {
			if inBody {
				return se.Name.Local
			}
			inBody = se.Name.Local == "Body"
		}
	}
	return "?"
}

var taskRefRE = regexp.MustCompile(`<returnval type="Task">([^<]+)</returnval>`)

// front is the HTTP handler in front of vcsim's mux.
type front struct {
	mux http.Handler
	lab *lab
}

func (f *front) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/sdk" && r.Method == http.MethodPost:
		f.serveSOAP(w, r)
	case r.URL.Path == "/lab/guest":
		f.lab.serveGuestControl(w, r)
	case r.URL.Path == "/lab/guestops":
		f.lab.serveGuestOpsControl(w, r) // guestops.go
	case r.URL.Path == guestFilePath:
		f.lab.serveGuestFile(w, r)
	case len(r.URL.Path) >= 5 && r.URL.Path[:5] == "/lab/":
		f.lab.serveControl(w, r)
	default:
		f.mux.ServeHTTP(w, r)
	}
}

func (f *front) serveSOAP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	name := methodName(body)
	f.lab.count(name)
	method, err := simulator.UnmarshalBody(vimTypes, body)
	if err == nil {
		if f.serveGuestPower(w, r, body, name, method) {
			return
		}
		if f.serveGuestOps(w, r, name, method) { // guestops.go
			return
		}
		switch req := method.Body.(type) {
		case *types.QueryChangedDiskAreas:
			if !authenticated(r) {
				writeFault(w, "not authenticated", &types.NotAuthenticated{})
				return
			}
			info, fault := f.lab.queryChangedDiskAreas(req)
			if fault != nil {
				writeFault(w, faultText(fault), fault)
				return
			}
			writeResult(w, name, info)
			return
		case *types.FindAllByUuid:
			if !authenticated(r) {
				writeFault(w, "not authenticated", &types.NotAuthenticated{})
				return
			}
			writeResult(w, name, findAllByUUID(req))
			return
		case *types.ConsolidateVMDisks_Task:
			if !authenticated(r) {
				writeFault(w, "not authenticated", &types.NotAuthenticated{})
				return
			}
			ref, fault := f.lab.consolidateTask(req.This)
			if fault != nil {
				writeFault(w, faultText(fault), fault)
				return
			}
			writeResult(w, name, ref)
			return
		}
		if h := f.lab.hookFor(method); h != nil {
			f.runHooked(w, r, body, name, h)
			return
		}
	}
	rec := f.passThrough(r, body, name)
	copyRecorder(w, rec)
}

// authenticated: the session lookup is unexported in vcsim, so calls answered
// here only require the session cookie to be present.
func authenticated(r *http.Request) bool {
	c, err := r.Cookie("vmware_soap_session")
	return err == nil && c.Value != ""
}

// passThrough runs the request through vcsim into a recorder. A panic in vcsim
// becomes an empty reply for Fetch (vcsim 0.24 panics on unset properties, which
// pyvmomi 9 reads through Fetch) and a SystemError fault otherwise.
func (f *front) passThrough(r *http.Request, body []byte, name string) (rec *httptest.ResponseRecorder) {
	rec = httptest.NewRecorder()
	defer func() {
		if p := recover(); p != nil {
			rec = httptest.NewRecorder()
			if name == "Fetch" {
				writeResult(rec, name, nil)
				return
			}
			log.Printf("vcsim panic in %s: %v", name, p)
			writeFault(rec, fmt.Sprintf("%s: %v", name, p), &types.SystemError{Reason: fmt.Sprint(p)})
		}
	}()
	r2 := r.Clone(r.Context())
	r2.Body = io.NopCloser(bytes.NewReader(body))
	f.mux.ServeHTTP(rec, r2)
	return rec
}

func copyRecorder(w http.ResponseWriter, rec *httptest.ResponseRecorder) {
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

// runHooked serialises the operation per VM, runs pre, vcsim, then post (only
// when the task succeeded; vcsim 0.24 runs tasks synchronously).
func (f *front) runHooked(w http.ResponseWriter, r *http.Request, body []byte, name string, h *hook) {
	if h.vm != nil {
		h.vm.mu.Lock()
		defer h.vm.mu.Unlock()
	}
	if h.check != nil && h.vm != nil {
		if fault := h.check(); fault != nil {
			vm := simulator.Map.Get(h.vm.ref).(mo.Reference)
			task := simulator.CreateTask(vm, name, func(*simulator.Task) (types.AnyType, types.BaseMethodFault) {
				return nil, fault
			})
			writeResult(w, name, task.Run())
			return
		}
	}
	if h.pre != nil {
		h.pre()
	}
	rec := f.passThrough(r, body, name)
	if m := taskRefRE.FindSubmatch(rec.Body.Bytes()); rec.Code == http.StatusOK && m != nil {
		ref := types.ManagedObjectReference{Type: "Task", Value: string(m[1])}
		if task, ok := simulator.Map.Get(ref).(*simulator.Task); ok {
			f.lab.finishTask(task, h)
		}
	}
	copyRecorder(w, rec)
}
