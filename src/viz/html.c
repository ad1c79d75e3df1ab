/* The viewer: one self-contained HTML page per connection. The data (one
 * object per packet: its line in the trace's notation, each side's state
 * after it, the header fields) goes in as JSON written by jansson; the
 * sequence diagram and the plots as inline SVG; a small script moves the
 * cursor. A Content-Security-Policy forbids the page any fetch. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "sockstack/err.h"
#include "sockstack/viz.h"
#include "viz/viz_int.h"

/* RFC 9293's state diagram (figure 5): where each state sits, and the arcs. */
static const struct { const char *name; int x, y; } fsm_pos[] = {
    {"CLOSED", 260, 24},      {"LISTEN", 260, 84},      {"SYN-RECEIVED", 90, 144},
    {"SYN-SENT", 430, 144},   {"ESTABLISHED", 260, 204}, {"FIN-WAIT-1", 90, 264},
    {"CLOSE-WAIT", 430, 264}, {"FIN-WAIT-2", 90, 334},   {"CLOSING", 260, 304},
    {"LAST-ACK", 430, 334},   {"TIME-WAIT", 260, 394},
};
static const int fsm_arcs[][2] = {
    {0, 1}, {0, 3}, {1, 2}, {1, 3}, {3, 2}, {2, 4}, {3, 4}, {2, 5}, {4, 5},
    {4, 6}, {5, 7}, {5, 8}, {7, 10}, {8, 10}, {6, 9}, {9, 0}, {10, 0},
};

static void fsm_svg(FILE *out)
{
    fputs("<svg id=\"fsm\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 520 420\" "
          "width=\"520\" height=\"420\">\n", out);
    for (size_t i = 0; i < sizeof fsm_arcs / sizeof fsm_arcs[0]; i++) {
        int a = fsm_arcs[i][0], b = fsm_arcs[i][1];
        fprintf(out, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#bbb\"/>\n",
                fsm_pos[a].x, fsm_pos[a].y, fsm_pos[b].x, fsm_pos[b].y);
    }
    for (size_t i = 0; i < sizeof fsm_pos / sizeof fsm_pos[0]; i++)
        fprintf(out, "<rect id=\"fsm-%s\" x=\"%d\" y=\"%d\" width=\"140\" height=\"26\" rx=\"6\"/>"
                     "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">%s</text>\n",
                fsm_pos[i].name, fsm_pos[i].x - 70, fsm_pos[i].y - 13, fsm_pos[i].x,
                fsm_pos[i].y + 4, fsm_pos[i].name);
    fputs("</svg>\n", out);
}

/* An SVG drawn by fn, without its XML declaration. */
static int inline_svg(const ss_viz *v, int (*fn)(const ss_viz *, FILE *), FILE *out)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    if (!m)
        return -ENOMEM;
    int rc = fn(v, m);
    fclose(m);
    if (rc == 0) {
        const char *s = strstr(buf, "<svg");
        fputs(s ? s : "", out);
    }
    free(buf);
    return rc;
}

static json_t *end_str(const struct ss_ana_end *e)
{
    char b[64];
    ss_ana_end_format(e, b, sizeof b);
    return json_string(b);
}

/* The header fields of a packet record, in wire order. */
static json_t *header(const struct ss_ana_rec *r)
{
    const struct ss_trace_seg *g = &r->seg;
    char fl[40], o[256] = "";
    json_t *h = json_array();
#define F(k, v) json_array_append_new(h, json_pack("[s,o]", k, v))
    if (r->kind == SS_ANA_ICMP_ERR) {
        F("source", end_str(&r->src));
        F("destination", end_str(&r->dst));
        F("ICMP type", json_integer(r->icmp_type));
        F("ICMP code", json_integer(r->icmp_code));
        F("quoted seq", json_integer(g->seq));
        return h;
    }
    const struct ss_ana_hdr *ip = &r->hdr;
    char x[16];
#define HEX(v) (snprintf(x, sizeof x, "0x%04x", (unsigned)(v)), json_string(x))
    if (ip->have && ip->version == 4) {
        char f[16];
        snprintf(f, sizeof f, "%s%s%s", ip->ip_flags & 2 ? "DF" : "",
                 (ip->ip_flags & 3) == 3 ? "," : "", ip->ip_flags & 1 ? "MF" : "");
        F("IP version", json_integer(4));
        F("IHL (32-bit words)", json_integer(ip->ihl));
        F("TOS", json_integer(ip->tos));
        F("total length", json_integer(ip->tot_len));
        F("identification", json_integer(ip->id));
        F("IP flags", json_string(f[0] ? f : "-"));
        F("fragment offset", json_integer(ip->frag_off));
        F("TTL", json_integer(ip->ttl));
        F("protocol", json_integer(ip->proto));
        F("header checksum", HEX(ip->ip_cksum));
    } else if (ip->have) {
        F("IP version", json_integer(6));
        F("traffic class", json_integer(ip->tos));
        F("flow label", json_integer(ip->flow));
        F("payload length", json_integer(ip->tot_len));
        F("next header", json_integer(ip->proto));
        F("hop limit", json_integer(ip->ttl));
    }
    F("source", end_str(&r->src));
    F("destination", end_str(&r->dst));
    F("sequence number", json_integer(g->seq));
    F("acknowledgment number", json_integer(g->ack));
    if (ip->have)
        F("data offset (32-bit words)", json_integer(ip->tcp_doff));
    F("flags", json_string(ss_tcp_flags_str(g->flags, fl, sizeof fl)));
    F("window", json_integer(g->win));
    if (ip->have)
        F("TCP checksum", HEX(ip->tcp_cksum));
    F("urgent pointer", json_integer(g->urp));
#undef HEX
    F("payload bytes", json_integer(g->len));
    if (g->opt_len)
        ss_tcp_options_format(g->opt, g->opt_len, o, sizeof o);
    F("options", json_string(o));
    if (g->mss)
        F("MSS", json_integer(g->mss));
    if (g->wscale >= 0)
        F("window scale", json_integer(g->wscale));
    if (g->sack_ok)
        F("SACK permitted", json_true());
    if (g->ts) {
        F("TS val", json_integer(g->ts_val));
        F("TS ecr", json_integer(g->ts_ecr));
    }
    for (unsigned b = 0; b < g->nsack && b < 4; b++) {
        char s[48];
        snprintf(s, sizeof s, "%u:%u", g->sack[b][0], g->sack[b][1]);
        F("SACK block", json_string(s));
    }
#undef F
    return h;
}

/* Every packet of the selected connection, with the states after it (and
 * after any STATE record before the next packet). */
static json_t *packets(const ss_viz *v)
{
    json_t *arr = json_array();
    uint64_t t0 = 0;
    bool have_t0 = false;
    for (size_t i = 0; i < v->n; i++)
        if (v->recs[i].r.conn == v->conn && v->recs[i].r.kind == SS_ANA_SEG) {
            t0 = v->recs[i].r.t_us;
            have_t0 = true;
            break;
        }
    json_t *last = NULL;
    uint64_t last_t = 0;
    json_t *pending = json_array();   /* state changes before the first packet */
    for (size_t i = 0; i < v->n; i++) {
        const struct vrec *x = &v->recs[i];
        const struct ss_ana_rec *r = &x->r;
        if (r->conn != v->conn)
            continue;
        json_t *changes = json_array();
        for (int c = 0; c < r->nchanges; c++) {
            char s[96];
            snprintf(s, sizeof s, "%s: %s -> %s", r->change[c].side == 0 ? "A" : "B",
                     ss_tcp_state_name(r->change[c].old_state),
                     ss_tcp_state_name(r->change[c].new_state));
            json_array_append_new(changes, json_string(s));
        }
        json_t *states = json_pack("[s,s]", ss_tcp_state_name(r->state[0]),
                                   ss_tcp_state_name(r->state[1]));
        if (r->kind == SS_ANA_STATE) {
            /* A stack's own state change at the instant of the packet
             * before belongs to it; a later one (a timer's, or the peer's
             * on arrival) is an entry of its own on the timeline. */
            if (!last || r->t_us == last_t) {
                json_array_extend(last ? json_object_get(last, "changes") : pending, changes);
                json_decref(changes);
                if (last)
                    json_object_set_new(last, "states", states);
                else
                    json_decref(states);
                continue;
            }
            json_t *e = json_pack("{s:f,s:i,s:s,s:s,s:[],s:o,s:o,s:[]}", "t",
                                  have_t0 && r->t_us >= t0 ? (r->t_us - t0) / 1e6 : 0.0, "from",
                                  r->from, "kind", "state", "line",
                                  json_string_value(json_array_get(changes, 0)), "flags",
                                  "states", states, "changes", changes, "hdr");
            json_array_append_new(arr, e);
            last = e;
            last_t = r->t_us;
            continue;
        }
        char line[1024];
        ss_ana_format(r, 0, 0, line, sizeof line);
        json_t *fl = json_array();
        for (unsigned b = 1; b < (1u << SS_ANA_NFLAGS); b <<= 1)
            if (r->flags & b)
                json_array_append_new(fl, json_string(ss_ana_flag_name(b)));
        if (x->lost)
            json_array_append_new(fl, json_string("lost"));
        json_t *p = json_pack("{s:f,s:i,s:s,s:s,s:o,s:o,s:o,s:o}", "t",
                              have_t0 && r->t_us >= t0 ? (r->t_us - t0) / 1e6 : 0.0, "from",
                              r->from, "kind", "packet", "line", line, "flags", fl, "states", states, "changes",
                              changes, "hdr", header(r));
        if (!last && json_array_size(pending)) {
            json_object_set(p, "before", pending);
        }
        json_array_append_new(arr, p);
        last = p;
        last_t = r->t_us;
    }
    json_decref(pending);
    return arr;
}

static const char page_css[] =
    "body{font-family:sans-serif;margin:12px;color:#222}"
    "h1{font-size:18px;margin:0 0 8px}h2{font-size:15px;margin:18px 0 6px}"
    "#controls{position:sticky;top:0;background:#fff;padding:6px 0;border-bottom:1px solid #ccc;"
    "z-index:2}#scrub{width:60%;vertical-align:middle}"
    "#main{display:flex;gap:16px;margin-top:8px}#left{flex:0 0 540px}#right{flex:1;min-width:0}"
    "#states{font-size:15px;margin:6px 0}#state-a{color:#06c}#state-b{color:#c60}"
    "#fsm rect{fill:#f4f4f4;stroke:#999}#fsm rect.a{fill:#9cf}#fsm rect.b{fill:#fc9}"
    "#fsm rect.a.b{fill:#c9f}#fsm text{font:12px monospace}"
    "#hdr{border-collapse:collapse;font:12px monospace}#hdr td{border:1px solid #ddd;"
    "padding:2px 6px}#list{font:12px monospace;height:420px;overflow:auto;margin:0;"
    "padding-left:48px;border:1px solid #ddd}#list li{white-space:pre;cursor:pointer}"
    "#list li.cur{background:#ffe08a}#list li.rtx{color:#c60}#list li.lost{color:#c00}"
    ".zoom{border:1px solid #ddd;overflow:hidden;max-height:640px}.zoom svg{display:block;"
    "width:100%;height:auto;cursor:grab}.hint{color:#666;font-size:12px}"
    "#line{font:12px monospace;margin-top:4px}";

static const char page_js[] =
    "const P=RUN.packets;let cur=0;const $=id=>document.getElementById(id);\n"
    "const list=$('list');\n"
    "const pk=[];let k=0;P.forEach(p=>{if(p.kind==='packet')k++;pk.push(k);});\n"
    "P.forEach((p,i)=>{const li=document.createElement('li');li.textContent=p.t.toFixed(6)+' '+"
    "(p.kind==='packet'?(p.from?'B ':'A ')+p.line:'-- '+p.line);if(p.flags.includes('retransmission'))li.className='rtx';"
    "if(p.flags.includes('lost'))li.className='lost';li.onclick=()=>show(i);list.appendChild(li);});\n"
    "function show(i){if(!P.length)return;cur=Math.max(0,Math.min(P.length-1,i));const p=P[cur];\n"
    " $('scrub').value=cur;$('pos').textContent=(p.kind==='packet'?'packet ':'state change after "
    "packet ')+pk[cur]+' of '+pk[P.length-1];\n"
    " $('time').textContent='t = '+p.t.toFixed(6)+' s';\n"
    " $('state-a').textContent=p.states[0];$('state-b').textContent=p.states[1];\n"
    " document.querySelectorAll('#fsm rect').forEach(r=>r.classList.remove('a','b'));\n"
    " const ra=$('fsm-'+p.states[0]),rb=$('fsm-'+p.states[1]);if(ra)ra.classList.add('a');"
    "if(rb)rb.classList.add('b');\n"
    " const t=$('hdr');t.textContent='';p.hdr.forEach(([k,v])=>{const tr=t.insertRow();"
    "tr.insertCell().textContent=k;tr.insertCell().textContent=String(v);});\n"
    " const fr=t.insertRow();fr.insertCell().textContent='analysis';"
    "fr.insertCell().textContent=p.flags.join(', ')||'-';\n"
    " const cr=t.insertRow();cr.insertCell().textContent='state changes';"
    "cr.insertCell().textContent=p.changes.join('; ')||'-';\n"
    " $('line').textContent=p.kind==='packet'?(p.from?'B':'A')+' '+p.line:p.line;\n"
    " list.querySelectorAll('li.cur').forEach(l=>l.classList.remove('cur'));\n"
    " const li=list.children[cur];if(li){li.classList.add('cur');"
    "li.scrollIntoView({block:'nearest'});}\n"
    " const c=$('tcursor');if(c){const x=+c.dataset.x0+(+c.dataset.w)*p.t/(+c.dataset.tmax);"
    "c.setAttribute('x1',x);c.setAttribute('x2',x);}\n"
    " document.body.dataset.index=cur;}\n"
    "$('scrub').max=Math.max(0,P.length-1);$('scrub').oninput=e=>show(+e.target.value);\n"
    "$('prev').onclick=()=>show(cur-1);$('next').onclick=()=>show(cur+1);\n"
    "document.addEventListener('keydown',e=>{if(e.key==='ArrowRight')show(cur+1);"
    "if(e.key==='ArrowLeft')show(cur-1);});\n"
    "document.querySelectorAll('.zoom svg').forEach(s=>{const vb0=s.getAttribute('viewBox')"
    ".split(' ').map(Number);let vb=vb0.slice(),drag=null;const set=()=>s.setAttribute('viewBox',"
    "vb.join(' '));\n"
    " s.addEventListener('wheel',e=>{e.preventDefault();const r=s.getBoundingClientRect();"
    "const fx=(e.clientX-r.left)/r.width,fy=(e.clientY-r.top)/r.height;const k=e.deltaY<0?0.8:1.25;"
    "const w=vb[2]*k,h=vb[3]*k;vb=[vb[0]+(vb[2]-w)*fx,vb[1]+(vb[3]-h)*fy,w,h];set();},"
    "{passive:false});\n"
    " s.addEventListener('mousedown',e=>{drag=[e.clientX,e.clientY,vb[0],vb[1]];});\n"
    " window.addEventListener('mouseup',()=>drag=null);\n"
    " s.addEventListener('mousemove',e=>{if(!drag)return;const r=s.getBoundingClientRect();"
    "vb[0]=drag[2]-(e.clientX-drag[0])*vb[2]/r.width;vb[1]=drag[3]-(e.clientY-drag[1])*vb[3]/"
    "r.height;set();});\n"
    " s.addEventListener('dblclick',()=>{vb=vb0.slice();set();});});\n"
    "const m=/^#(i|t)=([0-9.]+)/.exec(location.hash);let start=0;\n"
    "if(m&&m[1]==='i')start=+m[2];if(m&&m[1]==='t'){const t=+m[2];start=0;"
    "P.forEach((p,i)=>{if(p.t<=t)start=i;});}\n"
    "show(start);\n";

int ss_viz_html(const ss_viz *v, const char *title, FILE *out)
{
    json_t *pk = packets(v);
    if (!pk)
        return -ENOMEM;
    json_t *run = json_pack("{s:o,s:s}", "packets", pk, "title", title ? title : "");
    /* JSON_ESCAPE_SLASH: no "</script>" can appear inside the data. */
    char *data = json_dumps(run, JSON_COMPACT | JSON_ESCAPE_SLASH);
    json_decref(run);
    if (!data)
        return -ENOMEM;
    size_t np = 0;
    for (size_t i = 0; i < v->n; i++)
        if (v->recs[i].r.conn == v->conn && v->recs[i].r.kind != SS_ANA_STATE)
            np++;
    fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
          "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
          "style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">\n<title>",
          out);
    for (const char *s = title ? title : ""; *s; s++)
        fputs(*s == '<' ? "&lt;" : *s == '&' ? "&amp;" : (char[]){*s, 0}, out);
    fprintf(out, "</title>\n<style>%s</style></head>\n<body data-index=\"0\">\n", page_css);
    fputs("<h1>", out);
    for (const char *s = title ? title : ""; *s; s++)
        fputs(*s == '<' ? "&lt;" : *s == '&' ? "&amp;" : (char[]){*s, 0}, out);
    fprintf(out, " <span id=\"count\">%zu packets</span></h1>\n", np);
    fputs("<div id=\"controls\"><button id=\"prev\" title=\"previous (left arrow)\">&#9664;"
          "</button> <input type=\"range\" id=\"scrub\" min=\"0\" max=\"0\" value=\"0\"> "
          "<button id=\"next\" title=\"next (right arrow)\">&#9654;</button> "
          "<span id=\"pos\"></span> &middot; <span id=\"time\"></span>"
          "<div id=\"line\"></div></div>\n"
          "<div id=\"main\"><div id=\"left\"><div id=\"states\">A: <b id=\"state-a\"></b> "
          "&nbsp; B: <b id=\"state-b\"></b> <span class=\"hint\">(A blue, B orange, both "
          "purple; RFC 9293 figure 5)</span></div>\n",
          out);
    fsm_svg(out);
    fputs("<h2>Header of the selected packet</h2><table id=\"hdr\"></table></div>\n"
          "<div id=\"right\"><h2>Packets</h2><ol id=\"list\" start=\"1\"></ol></div></div>\n"
          "<h2>Sequence diagram <span class=\"hint\">(wheel: zoom, drag: move, double "
          "click: reset)</span></h2><div class=\"zoom\" id=\"diagram\">\n",
          out);
    int rc = inline_svg(v, ss_viz_diagram_svg, out);
    fputs("</div>\n<h2>Time-sequence graph, window and RTT <span class=\"hint\">(wheel: "
          "zoom, drag: move, double click: reset; the magenta line is the cursor)</span></h2>"
          "<div class=\"zoom\" id=\"plots\">\n",
          out);
    if (rc == 0)
        rc = inline_svg(v, ss_viz_plot_svg, out);
    fprintf(out, "</div>\n<script>\nconst RUN=%s;\n%s</script>\n</body></html>\n", data,
            page_js);
    free(data);
    if (rc < 0)
        return rc;
    return ferror(out) ? -EIO : 0;
}
