//! SVG diagrams of a topology, in the spirit of the ADR's drawing: the global
//! DNS tier on top, one box per cloud holding its networks and clusters, the
//! Megaport Cloud Routers with their VXCs below, and the monitoring network
//! at the bottom, with a line for every VXC attachment.
//!
//! Text is set in a monospace font and every box is sized from its text, so
//! labels never overlap; [`Diagram::labels`] exposes the label boxes for
//! tests to check that.

use std::collections::HashMap;
use std::fmt::Write as _;

use super::cidr::Cidr;
use super::model::*;

const FONT: f64 = 12.0;
/// Advance width of one monospace character at `FONT` (0.6 em, generous).
const CHAR_W: f64 = 7.4;
const LINE_H: f64 = 16.0;
const PAD: f64 = 10.0;
const GAP: f64 = 24.0;
const BAND_GAP: f64 = 90.0;

/// An axis-aligned rectangle.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rect {
    /// Left.
    pub x: f64,
    /// Top.
    pub y: f64,
    /// Width.
    pub w: f64,
    /// Height.
    pub h: f64,
}

impl Rect {
    /// Whether two rectangles share interior area.
    pub fn intersects(&self, o: &Rect) -> bool {
        self.x < o.x + o.w && o.x < self.x + self.w && self.y < o.y + o.h && o.y < self.y + self.h
    }
}

/// A rendered diagram.
#[derive(Clone, Debug)]
pub struct Diagram {
    /// The SVG document.
    pub svg: String,
    /// Where each text label was placed, with its text.
    pub labels: Vec<(Rect, String)>,
    /// Width and height of the picture.
    pub size: (f64, f64),
}

/// A box of text lines.
struct TextBox {
    lines: Vec<(String, Style)>,
}

#[derive(Clone, Copy)]
enum Style {
    Title,
    Normal,
    Dim,
}

impl TextBox {
    fn new() -> Self {
        TextBox { lines: Vec::new() }
    }
    fn title(mut self, s: impl Into<String>) -> Self {
        self.lines.push((s.into(), Style::Title));
        self
    }
    fn line(mut self, s: impl Into<String>) -> Self {
        self.lines.push((s.into(), Style::Normal));
        self
    }
    fn dim(mut self, s: impl Into<String>) -> Self {
        self.lines.push((s.into(), Style::Dim));
        self
    }
    fn text_w(&self) -> f64 {
        self.lines
            .iter()
            .map(|(s, _)| s.chars().count() as f64 * CHAR_W)
            .fold(0.0, f64::max)
    }
    fn text_h(&self) -> f64 {
        self.lines.len() as f64 * LINE_H
    }
}

struct Canvas {
    body: String,
    labels: Vec<(Rect, String)>,
}

impl Canvas {
    fn rect(&mut self, r: Rect, fill: &str, stroke: &str, dashed: bool) {
        let _ = writeln!(
            self.body,
            r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" rx="6" fill="{fill}" stroke="{stroke}" stroke-width="1.5"{}/>"#,
            r.x,
            r.y,
            r.w,
            r.h,
            if dashed {
                r#" stroke-dasharray="6 4""#
            } else {
                ""
            }
        );
    }

    /// Writes the lines of `tb` starting at (x, y) (top-left of the text area).
    fn text(&mut self, tb: &TextBox, x: f64, y: f64) {
        for (i, (s, style)) in tb.lines.iter().enumerate() {
            let top = y + i as f64 * LINE_H;
            let baseline = top + LINE_H - 4.0;
            let (weight, fill) = match style {
                Style::Title => ("bold", "#1b1f24"),
                Style::Normal => ("normal", "#1b1f24"),
                Style::Dim => ("normal", "#57606a"),
            };
            let _ = writeln!(
                self.body,
                r#"<text x="{x:.1}" y="{baseline:.1}" font-weight="{weight}" fill="{fill}">{}</text>"#,
                escape(s)
            );
            let w = s.chars().count() as f64 * CHAR_W;
            self.labels.push((
                Rect {
                    x,
                    y: top,
                    w,
                    h: LINE_H,
                },
                s.clone(),
            ));
        }
    }

    fn line(&mut self, (x1, y1): (f64, f64), (x2, y2): (f64, f64), colour: &str, dashed: bool) {
        let _ = writeln!(
            self.body,
            r#"<line x1="{x1:.1}" y1="{y1:.1}" x2="{x2:.1}" y2="{y2:.1}" stroke="{colour}" stroke-width="1.6"{}/>"#,
            if dashed {
                r#" stroke-dasharray="5 4""#
            } else {
                ""
            }
        );
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn cidrs(list: &[Cidr]) -> String {
    list.iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn cloud_colour(kind: ProviderKind) -> (&'static str, &'static str) {
    match kind {
        ProviderKind::Aws => ("#fff4e5", "#e8890c"),
        ProviderKind::Azure => ("#e8f3fd", "#0a6ed1"),
        ProviderKind::Gcp => ("#eaf6ec", "#2e8540"),
        ProviderKind::OnPrem => ("#f2f2f2", "#6e7781"),
    }
}

fn cloud_title(kind: ProviderKind) -> &'static str {
    match kind {
        ProviderKind::Aws => "AWS",
        ProviderKind::Azure => "AZURE",
        ProviderKind::Gcp => "GCP",
        ProviderKind::OnPrem => "ON-PREM",
    }
}

/// A network box with its clusters, laid out but not yet placed.
struct NetBox {
    index: usize,
    head: TextBox,
    clusters: Vec<TextBox>,
    w: f64,
    h: f64,
}

fn net_box(t: &Topology, index: usize) -> NetBox {
    let n = &t.spec.networks[index];
    let kind_word = t
        .spec
        .providers
        .iter()
        .find(|p| p.name == n.provider)
        .map(|p| match p.kind {
            ProviderKind::Azure => "VNet",
            ProviderKind::OnPrem => "network",
            _ => "VPC",
        })
        .unwrap_or("network");
    let mut head = TextBox::new()
        .title(n.name.clone())
        .line(format!("{kind_word} {}", cidrs(&n.cidrs)))
        .dim(n.region.clone());
    if !n.subnets.is_empty() {
        head = head.dim(format!("{} subnets", n.subnets.len()));
    }
    for e in t
        .spec
        .private_endpoints
        .iter()
        .filter(|e| e.network == n.name)
    {
        head = head.dim(format!("endpoint {}", e.name));
    }
    let clusters: Vec<TextBox> = t
        .spec
        .clusters
        .iter()
        .filter(|c| c.network == n.name)
        .map(|c| {
            let mut tb = TextBox::new()
                .title(format!(
                    "{} ({})",
                    c.name,
                    format!("{:?}", c.flavour).to_uppercase()
                ))
                .line(format!("pods {}", c.pod_cidr))
                .line(format!("svc  {}", c.service_cidr));
            if let Some(m) = &c.cluster_mesh {
                tb = tb.dim(format!("mesh id {} {}", m.id, m.name));
            }
            tb
        })
        .collect();
    let inner_w = clusters
        .iter()
        .map(|c| c.text_w() + 2.0 * PAD)
        .fold(head.text_w(), f64::max);
    let w = inner_w + 2.0 * PAD;
    let h = PAD
        + head.text_h()
        + clusters
            .iter()
            .map(|c| c.text_h() + 2.0 * PAD + PAD)
            .sum::<f64>()
        + PAD;
    NetBox {
        index,
        head,
        clusters,
        w,
        h,
    }
}

/// Renders a topology as an SVG picture.
pub fn render_svg(t: &Topology) -> Diagram {
    let spec = &t.spec;
    let monitoring = spec.monitoring.as_ref().map(|m| m.network.as_str());
    let mut canvas = Canvas {
        body: String::new(),
        labels: Vec::new(),
    };
    let margin = 24.0;
    let mut y = margin;

    // Title.
    let title = TextBox::new()
        .title(format!("mcnet topology: {}", t.metadata.name))
        .dim(format!(
            "{} networks · {} clusters · {} MCR · {} VXCs · {} peerings",
            spec.networks.len(),
            spec.clusters.len(),
            spec.interconnect.routers.len(),
            spec.interconnect.vxcs.len(),
            spec.peerings.len()
        ));
    let mut deferred_title = (title, margin, y);
    y += deferred_title.0.text_h() + GAP;

    // Global DNS tier.
    let dns = if spec.load_balancing.hostnames.is_empty() {
        None
    } else {
        let mut tb = TextBox::new().title("GLOBAL DNS LOAD BALANCING");
        for h in &spec.load_balancing.hostnames {
            let targets: Vec<&str> = h.targets.iter().map(|t| t.cluster.as_str()).collect();
            tb = tb.line(
                format!("{} · {:?} → {}", h.name, h.policy, targets.join(", "))
                    .replace("Failover", "failover")
                    .replace("Weighted", "weighted")
                    .replace("Latency", "latency")
                    .replace("Geo", "geo"),
            );
        }
        Some(tb)
    };
    let dns_y = y;
    if let Some(tb) = &dns {
        y += tb.text_h() + 2.0 * PAD + BAND_GAP * 0.5;
    }

    // Cloud columns: each provider's networks side by side.
    let mut providers: Vec<(&Provider, Vec<NetBox>)> = Vec::new();
    for p in &spec.providers {
        let nets: Vec<NetBox> = spec
            .networks
            .iter()
            .enumerate()
            .filter(|(_, n)| n.provider == p.name && Some(n.name.as_str()) != monitoring)
            .map(|(i, _)| net_box(t, i))
            .collect();
        if !nets.is_empty() {
            providers.push((p, nets));
        }
    }
    let clouds_top = y;
    let mut x = margin;
    let mut net_anchor: HashMap<usize, (f64, f64, f64)> = HashMap::new(); // index -> (x centre, bottom y, width)
    let mut cloud_bottom: f64 = clouds_top;
    let mut cloud_rects = Vec::new();
    for (p, nets) in &providers {
        let head = TextBox::new().title(cloud_title(p.kind)).dim(format!(
            "provider {} · {}",
            p.name,
            p.regions.join(", ")
        ));
        let inner_w =
            nets.iter().map(|n| n.w).sum::<f64>() + GAP * (nets.len().saturating_sub(1)) as f64;
        let w = inner_w.max(head.text_w()) + 2.0 * PAD;
        let h = PAD + head.text_h() + PAD + nets.iter().map(|n| n.h).fold(0.0, f64::max) + PAD;
        cloud_rects.push((
            Rect {
                x,
                y: clouds_top,
                w,
                h,
            },
            p.kind,
            head,
            x,
        ));
        let mut nx = x + PAD;
        let ny = clouds_top + PAD + 2.0 * LINE_H + PAD;
        for n in nets {
            net_anchor.insert(n.index, (nx + n.w / 2.0, ny + n.h, n.w));
            nx += n.w + GAP;
        }
        cloud_bottom = cloud_bottom.max(clouds_top + h);
        x += w + GAP;
    }
    let clouds_w = x - margin - GAP;
    y = cloud_bottom + BAND_GAP;

    // Interconnect band.
    let mcr_top = y;
    // VXC name -> (x centre, top and bottom of its MCR box): lines end on the
    // MCR's edge, straight above or below the VXC.
    let mut vxc_pos: HashMap<&str, (f64, f64, f64)> = HashMap::new();
    let mut mcr_boxes = Vec::new();
    let mut mx = margin;
    let mut mcr_bottom = mcr_top;
    for r in &spec.interconnect.routers {
        let head = TextBox::new()
            .title(format!("MEGAPORT CLOUD ROUTER {}", r.name))
            .line(format!(
                "{} · {} Mbps · ASN {}{}",
                r.location,
                r.speed_mbps,
                r.asn,
                r.diversity_zone
                    .map(|z| format!(" · zone {z:?}").to_lowercase())
                    .unwrap_or_default()
            ));
        let vxcs: Vec<(&Vxc, TextBox)> = spec
            .interconnect
            .vxcs
            .iter()
            .filter(|v| v.router == r.name)
            .map(|v| {
                let tb = TextBox::new()
                    .title(v.target.kind.label())
                    .line(v.name.clone())
                    .dim(format!(
                        "{} Mbps{}",
                        v.rate_limit_mbps,
                        v.vlan.map(|l| format!(" · VLAN {l}")).unwrap_or_default()
                    ));
                (v, tb)
            })
            .collect();
        let vw: Vec<f64> = vxcs.iter().map(|(_, tb)| tb.text_w() + 2.0 * PAD).collect();
        let inner = vw.iter().sum::<f64>() + GAP * vxcs.len().saturating_sub(1) as f64;
        let w = inner.max(head.text_w()) + 2.0 * PAD;
        let vh = vxcs.iter().map(|(_, tb)| tb.text_h()).fold(0.0, f64::max) + 2.0 * PAD;
        let h = PAD + head.text_h() + PAD + vh + PAD;
        let mut vx = mx + PAD;
        let vy = mcr_top + PAD + head.text_h() + PAD;
        let mut placed = Vec::new();
        for ((v, tb), w) in vxcs.into_iter().zip(vw) {
            vxc_pos.insert(v.name.as_str(), (vx + w / 2.0, mcr_top, mcr_top + h));
            placed.push((
                Rect {
                    x: vx,
                    y: vy,
                    w,
                    h: vh,
                },
                tb,
            ));
            vx += w + GAP;
        }
        mcr_boxes.push((
            Rect {
                x: mx,
                y: mcr_top,
                w,
                h,
            },
            head,
            placed,
        ));
        mcr_bottom = mcr_bottom.max(mcr_top + h);
        mx += w + GAP;
    }
    let mcr_w = (mx - margin - GAP).max(0.0);
    if !spec.interconnect.routers.is_empty() {
        y = mcr_bottom + BAND_GAP;
    }

    // Monitoring band.
    let mut mon = None;
    if let Some(m) = &spec.monitoring {
        if let Some(i) = spec.networks.iter().position(|n| n.name == m.network) {
            let n = &spec.networks[i];
            let head = TextBox::new()
                .title(format!("MONITORING {}", n.name))
                .line(cidrs(&n.cidrs))
                .dim(format!("{} · {}", n.provider, n.region));
            let comps: Vec<TextBox> = m
                .components
                .iter()
                .map(|c| {
                    let kind = match c.kind {
                        MonitoringKind::VictoriaMetrics => "VictoriaMetrics",
                        MonitoringKind::Grafana => "Grafana",
                        MonitoringKind::Vector => "Vector",
                        MonitoringKind::Prometheus => "Prometheus",
                    };
                    let mut tb = TextBox::new().title(kind).line(c.name.clone());
                    if let Some(p) = c.port {
                        tb = tb.dim(format!("port {p}"));
                    }
                    tb
                })
                .collect();
            let cw: Vec<f64> = comps.iter().map(|c| c.text_w() + 2.0 * PAD).collect();
            let inner = cw.iter().sum::<f64>() + GAP * comps.len().saturating_sub(1) as f64;
            let w = inner.max(head.text_w()) + 2.0 * PAD;
            let ch = comps.iter().map(|c| c.text_h()).fold(0.0, f64::max) + 2.0 * PAD;
            let h = PAD + head.text_h() + PAD + ch + PAD;
            mon = Some((i, Rect { x: margin, y, w, h }, head, comps, cw, ch));
            y += h + GAP;
        }
    }

    // Peerings and transit gateways legend.
    let peerings = if spec.peerings.is_empty() && spec.transit_gateways.is_empty() {
        None
    } else {
        let title = if spec.transit_gateways.is_empty() {
            "PEERINGS (non-transitive)"
        } else if spec.peerings.is_empty() {
            "TRANSIT GATEWAYS (hub routing)"
        } else {
            "PEERINGS (non-transitive) · TRANSIT GATEWAYS (hub routing)"
        };
        let mut tb = TextBox::new().title(title);
        for p in &spec.peerings {
            let kind = match p.kind {
                PeeringKind::VpcPeering => "VPC peering",
                PeeringKind::VnetPeering => "VNet peering",
                PeeringKind::NetworkPeering => "VPC Network Peering",
            };
            tb = tb.line(format!("{}: {} · {kind}", p.name, p.networks.join(" ↔ ")));
        }
        for g in &spec.transit_gateways {
            tb = tb.line(format!(
                "{}: transit gateway · {} · AS {} · {}",
                g.name,
                g.region,
                g.asn,
                g.networks.join(" ⇄ ")
            ));
        }
        Some(tb)
    };
    let peer_y = y;
    if let Some(tb) = &peerings {
        y += tb.text_h() + 2.0 * PAD + GAP;
    }

    // Centre the narrower bands under the widest.
    let mon_w = mon.as_ref().map(|m| m.1.w).unwrap_or(0.0);
    let peer_w = peerings
        .as_ref()
        .map(|p| p.text_w() + 2.0 * PAD)
        .unwrap_or(0.0);
    let dns_w = dns.as_ref().map(|d| d.text_w() + 2.0 * PAD).unwrap_or(0.0);
    let content_w = clouds_w
        .max(mcr_w)
        .max(mon_w)
        .max(peer_w)
        .max(dns_w)
        .max(deferred_title.0.text_w());
    let width = content_w + 2.0 * margin;
    let height = y - GAP + margin;
    let shift = |band_w: f64| (content_w - band_w) / 2.0;
    let (cloud_dx, mcr_dx, mon_dx) = (shift(clouds_w), shift(mcr_w), shift(mon_w));

    // Draw lines first so that boxes sit on top of them.
    let mut lines = Vec::new();
    for v in &spec.interconnect.vxcs {
        let Some(&(vx, vtop, vbottom)) = vxc_pos.get(v.name.as_str()) else {
            continue;
        };
        for n in &v.target.networks {
            let Some(i) = spec.networks.iter().position(|x| &x.name == n) else {
                continue;
            };
            if let Some(&(nx, nbottom, _)) = net_anchor.get(&i) {
                lines.push((
                    (nx + cloud_dx, nbottom),
                    (nx + cloud_dx, cloud_bottom),
                    (vx + mcr_dx, vtop),
                ));
            } else if let Some((mi, r, ..)) = &mon {
                if *mi == i {
                    let mx = r.x + mon_dx + r.w / 2.0;
                    lines.push(((mx, r.y), (mx, r.y), (vx + mcr_dx, vbottom)));
                }
            }
        }
    }
    for (a, b, c) in lines {
        canvas.line(a, b, "#8c959f", false);
        canvas.line(b, c, "#8c959f", false);
    }

    deferred_title.1 += 0.0;
    canvas.text(&deferred_title.0, deferred_title.1, deferred_title.2);

    if let Some(tb) = &dns {
        let w = tb.text_w() + 2.0 * PAD;
        let r = Rect {
            x: margin + shift(w),
            y: dns_y,
            w,
            h: tb.text_h() + 2.0 * PAD,
        };
        canvas.rect(r, "#f6f8fa", "#6e7781", false);
        canvas.text(tb, r.x + PAD, r.y + PAD);
    }

    for (r, kind, head, _) in &cloud_rects {
        let (fill, stroke) = cloud_colour(*kind);
        let r = Rect {
            x: r.x + cloud_dx,
            ..*r
        };
        canvas.rect(r, fill, stroke, false);
        canvas.text(head, r.x + PAD, r.y + PAD);
    }
    for (_, nets) in &providers {
        for n in nets {
            let &(cx, bottom, w) = &net_anchor[&n.index];
            let r = Rect {
                x: cx - w / 2.0 + cloud_dx,
                y: bottom - n.h,
                w,
                h: n.h,
            };
            canvas.rect(r, "#ffffff", "#6e7781", false);
            canvas.text(&n.head, r.x + PAD, r.y + PAD);
            let mut cy = r.y + PAD + n.head.text_h() + PAD;
            for c in &n.clusters {
                let cr = Rect {
                    x: r.x + PAD,
                    y: cy,
                    w: r.w - 2.0 * PAD,
                    h: c.text_h() + 2.0 * PAD,
                };
                canvas.rect(cr, "#f3eefc", "#8250df", false);
                canvas.text(c, cr.x + PAD, cr.y + PAD);
                cy += cr.h + PAD;
            }
        }
    }
    for (r, head, vxcs) in &mcr_boxes {
        let r = Rect {
            x: r.x + mcr_dx,
            ..*r
        };
        canvas.rect(r, "#fdeeee", "#cf222e", false);
        canvas.text(head, r.x + PAD, r.y + PAD);
        for (vr, tb) in vxcs {
            let vr = Rect {
                x: vr.x + mcr_dx,
                ..*vr
            };
            canvas.rect(vr, "#ffffff", "#cf222e", false);
            canvas.text(tb, vr.x + PAD, vr.y + PAD);
        }
    }
    if let Some((_, r, head, comps, cw, ch)) = &mon {
        let r = Rect {
            x: r.x + mon_dx,
            ..*r
        };
        canvas.rect(r, "#eef6fb", "#0969da", true);
        canvas.text(head, r.x + PAD, r.y + PAD);
        let mut cx = r.x + PAD;
        let cy = r.y + PAD + head.text_h() + PAD;
        for (c, w) in comps.iter().zip(cw) {
            let cr = Rect {
                x: cx,
                y: cy,
                w: *w,
                h: *ch,
            };
            canvas.rect(cr, "#ffffff", "#0969da", false);
            canvas.text(c, cr.x + PAD, cr.y + PAD);
            cx += w + GAP;
        }
    }
    if let Some(tb) = &peerings {
        let w = tb.text_w() + 2.0 * PAD;
        let r = Rect {
            x: margin + shift(w),
            y: peer_y,
            w,
            h: tb.text_h() + 2.0 * PAD,
        };
        canvas.rect(r, "#ffffff", "#6e7781", true);
        canvas.text(tb, r.x + PAD, r.y + PAD);
    }

    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="DejaVu Sans Mono, Menlo, Consolas, monospace" font-size="{FONT}">"#
    );
    let _ = writeln!(
        svg,
        "<title>mcnet topology {}</title>",
        escape(&t.metadata.name)
    );
    let _ = writeln!(
        svg,
        r##"<rect width="100%" height="100%" fill="#ffffff"/>"##
    );
    svg.push_str(&canvas.body);
    svg.push_str("</svg>\n");
    Diagram {
        svg,
        labels: canvas.labels,
        size: (width, height),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An example topology, parsed and allocated.
    fn example(path: &str) -> Topology {
        let text = std::fs::read_to_string(format!(
            "{}/../examples/topologies/{path}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        let t = super::super::parse(&text).topology.unwrap();
        super::super::ipam::allocate(&t).unwrap()
    }

    fn check(path: &str) {
        let t = example(path);
        let d = render_svg(&t);
        assert!(d.svg.starts_with("<svg"));
        for (i, (a, ta)) in d.labels.iter().enumerate() {
            assert!(
                a.x >= 0.0 && a.y >= 0.0 && a.x + a.w <= d.size.0 && a.y + a.h <= d.size.1,
                "{ta} outside the picture"
            );
            for (b, tb) in &d.labels[i + 1..] {
                assert!(
                    !a.intersects(b),
                    "labels overlap in {path}: {ta:?} {a:?} and {tb:?} {b:?}"
                );
            }
        }
        for n in &t.spec.networks {
            assert!(d.svg.contains(&n.name), "{} missing", n.name);
            for c in &n.cidrs {
                assert!(d.svg.contains(&c.to_string()));
            }
        }
        for v in &t.spec.interconnect.vxcs {
            assert!(d.svg.contains(&v.name));
        }
    }

    #[test]
    fn adr_003_has_no_overlapping_labels() {
        check("adr-003.yaml");
    }

    #[test]
    fn redundant_example_has_no_overlapping_labels() {
        check("adr-003-redundant.yaml");
    }

    #[test]
    fn transit_gateways_are_drawn() {
        check("aws-hub.yaml");
        let t = example("aws-hub.yaml");
        assert!(!t.spec.transit_gateways.is_empty());
        let d = render_svg(&t);
        assert!(d.svg.contains("TRANSIT GATEWAYS"), "{}", d.svg);
        for g in &t.spec.transit_gateways {
            let line = format!(
                "{}: transit gateway · {} · AS {} · {}",
                g.name,
                g.region,
                g.asn,
                g.networks.join(" ⇄ ")
            );
            assert!(d.svg.contains(&escape(&line)), "{line} missing");
        }
    }
}
