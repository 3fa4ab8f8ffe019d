/**
 * The dashboard's stylesheet and script, served with long cache lifetimes under a
 * content hash. Both are small on purpose: a page is readable without the script,
 * which only adds the live parts (queue and running builds, the tailing log).
 */
import { createHash } from 'node:crypto';

const CSS = `
:root{--bg:#fff;--fg:#1b1b1b;--muted:#555;--line:#d0d0d0;--link:#0b57d0;--ok:#1b6e2a;--bad:#b3261e;--warn:#8a5300;--code:#f5f5f5;--hit:#e6f0ff}
@media (prefers-color-scheme:dark){:root{--bg:#121212;--fg:#e8e8e8;--muted:#b0b0b0;--line:#3a3a3a;--link:#8ab4f8;--ok:#7bd88f;--bad:#ff8a80;--warn:#ffcc80;--code:#1e1e1e;--hit:#1d2b40}}
*{box-sizing:border-box}
body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;background:var(--bg);color:var(--fg)}
a{color:var(--link)}
a:focus,button:focus,input:focus,select:focus,summary:focus{outline:3px solid var(--link);outline-offset:1px}
.skip{position:absolute;left:-999px}.skip:focus{left:8px;top:8px;background:var(--bg);padding:4px}
header{display:flex;flex-wrap:wrap;gap:.3rem 1rem;align-items:center;padding:.5rem 1rem;border-bottom:1px solid var(--line)}
header .brand{font-weight:700;text-decoration:none;color:var(--fg)}
nav ul{display:flex;flex-wrap:wrap;gap:.2rem 1rem;list-style:none;margin:0;padding:0}
main{padding:0 1rem 2rem;max-width:1200px;margin:auto}
h1{font-size:1.4rem;margin:1rem 0 .5rem;word-break:break-word}h2{font-size:1.15rem;margin:1.4rem 0 .4rem}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:.3rem .5rem;border-bottom:1px solid var(--line);vertical-align:top}
th{font-weight:600}
.scroll{overflow-x:auto}
code,pre,.mono{font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:13px}
.hash{word-break:break-all}
pre{background:var(--code);padding:.5rem;overflow-x:auto;margin:0;white-space:pre-wrap;word-break:break-word}
.state{font-weight:600}.succeeded{color:var(--ok)}.failed{color:var(--bad)}.cancelled,.queued,.assigned{color:var(--muted)}.running{color:var(--warn)}
.filters{display:flex;flex-wrap:wrap;gap:.5rem;align-items:end;margin:.5rem 0}
.filters label{display:flex;flex-direction:column;font-size:.85rem}
input,select,button{font:inherit;padding:.25rem .4rem;color:var(--fg);background:var(--bg);border:1px solid var(--muted);border-radius:3px}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem;margin:0}dl.facts dt{font-weight:600}dl.facts dd{margin:0;word-break:break-word}
details.step{border:1px solid var(--line);margin:.2rem 0}details.step summary{cursor:pointer;padding:.2rem .4rem;font-family:ui-monospace,monospace;font-size:13px}
details.step.cached summary{background:var(--hit)}.hit{font-size:.8rem;border:1px solid var(--link);border-radius:3px;padding:0 .3rem;color:var(--link)}
.changed{background:var(--hit)}tr.first-change td{border-left:4px solid var(--warn)}
.diff .add{color:var(--ok)}.diff .del{color:var(--bad)}
.chart{width:100%;height:160px}.chart rect.succeeded{fill:var(--ok)}.chart rect.failed{fill:var(--bad)}.chart rect.cancelled{fill:var(--muted)}.chart .axis{stroke:var(--line)}.chart .axis-label{fill:var(--muted);font-size:11px}
footer.site{padding:0 1rem 1rem}.muted{color:var(--muted)}.note{border-left:4px solid var(--warn);padding:.3rem .6rem}
.fg0{color:#555}.fg1{color:#c62828}.fg2{color:#2e7d32}.fg3{color:#8d6e00}.fg4{color:#1565c0}.fg5{color:#8e24aa}.fg6{color:#00838f}.fg7{color:#777}
.fg8{color:#777}.fg9{color:#e53935}.fg10{color:#43a047}.fg11{color:#a68b00}.fg12{color:#1e88e5}.fg13{color:#ab47bc}.fg14{color:#00acc1}.fg15{color:#888}
.bg0{background:#333;color:#eee}.bg1{background:#ffcdd2}.bg2{background:#c8e6c9}.bg3{background:#fff9c4}.bg4{background:#bbdefb}.bg5{background:#e1bee7}.bg6{background:#b2ebf2}.bg7{background:#eee}
.b{font-weight:700}.i{font-style:italic}.u{text-decoration:underline}
@media (max-width:640px){th.wide,td.wide{display:none}main{padding:0 .5rem 2rem}dl.facts{grid-template-columns:1fr}dl.facts dt{margin-top:.3rem}}
`;

const JS = `
(function(){
"use strict";
function el(t,a,kids){var e=document.createElement(t);if(a)for(var k in a)e.setAttribute(k,a[k]);(kids||[]).forEach(function(c){e.appendChild(typeof c==="string"?document.createTextNode(c):c)});return e}
function fmt(ms){var d=new Date(ms);return d.toISOString().replace("T"," ").replace(/\\.\\d+Z$/,"")}
var board=document.querySelector("[data-live-board]");
if(board&&window.EventSource){
  var jobs={};
  var rows=board.querySelectorAll("tr[data-job]");
  rows.forEach(function(r){jobs[r.getAttribute("data-job")]=JSON.parse(r.getAttribute("data-event"))});
  var render=function(){
    ["queued","running"].forEach(function(kind){
      var body=document.getElementById(kind+"-rows");if(!body)return;
      var list=Object.keys(jobs).map(function(k){return jobs[k]}).filter(function(j){return kind==="queued"?j.state==="queued":(j.state==="assigned"||j.state==="running")}).sort(function(a,b){return a.since-b.since});
      body.textContent="";
      list.forEach(function(j){
        var tr=el("tr",{"data-job":j.job});
        tr.appendChild(el("td",{},[el("a",{href:"/builds/"+j.job},[j.job])]));
        tr.appendChild(el("td",{},[j.name]));tr.appendChild(el("td",{},[j.pool]));tr.appendChild(el("td",{"class":"wide"},[j.client]));
        tr.appendChild(el("td",{"class":"state "+j.state},[j.state]));tr.appendChild(el("td",{"class":"wide"},[j.worker||""]));tr.appendChild(el("td",{"class":"wide"},[fmt(j.since)]));
        body.appendChild(tr);
      });
      var count=document.getElementById(kind+"-count");if(count)count.textContent=String(list.length);
    });
  };
  var es=new EventSource("/live/events");
  es.addEventListener("job",function(m){var j=JSON.parse(m.data);jobs[j.job]=j;render()});
}
var log=document.querySelector("[data-live-log]");
if(log&&window.EventSource){
  var id=log.getAttribute("data-live-log");
  var box=document.getElementById("log");var status=document.getElementById("live-state");
  var cur=el("pre",{"class":"pre"});box.appendChild(cur);var curStep=null;
  var stream=new EventSource("/builds/"+id+"/log/events");
  stream.addEventListener("log",function(m){
    var e=JSON.parse(m.data);
    if(e.t==="step"){if(curStep)curStep.open=false;curStep=el("details",{"class":"step",open:""});var s=el("summary");s.innerHTML=e.title;curStep.appendChild(s);cur=el("pre");curStep.appendChild(cur);box.appendChild(curStep)}
    else if(e.t==="text"){cur.insertAdjacentHTML("beforeend",e.html)}
    else if(e.t==="cached"&&curStep){curStep.classList.add("cached");curStep.querySelector("summary").appendChild(el("span",{"class":"hit"},["cache hit"]))}
  });
  stream.addEventListener("reset",function(){box.textContent="";cur=el("pre",{"class":"pre"});box.appendChild(cur);curStep=null});
  stream.addEventListener("state",function(m){var s=JSON.parse(m.data);if(status){status.textContent=s.state;status.className="state "+s.state}});
  var waitStored=function(){fetch("/api/v1/builds/"+id,{headers:{accept:"application/json"},credentials:"same-origin"}).then(function(r){if(r.ok)location.reload();else setTimeout(waitStored,1000)},function(){setTimeout(waitStored,2000)})};
  stream.addEventListener("end",function(m){var s=JSON.parse(m.data);if(status){status.textContent=s.state;status.className="state "+s.state}stream.close();waitStored()});
  stream.addEventListener("stored",function(){stream.close();location.reload()});
}
})();
`;

const version = (text: string) => createHash('sha256').update(text).digest('hex').slice(0, 12);

export const assets = {
  css: { path: `/static/app.${version(CSS)}.css`, body: CSS.trim(), type: 'text/css; charset=utf-8' },
  js: { path: `/static/app.${version(JS)}.js`, body: JS.trim(), type: 'text/javascript; charset=utf-8' },
} as const;
