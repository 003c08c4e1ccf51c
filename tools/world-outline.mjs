// Regenerates pipeline/src/report/land-110m.path, the world outline of the SOC report's
// impossible-travel map, from Natural Earth's 1:110m land polygons (public domain), as the
// npm package world-atlas ships them in TopoJSON.
//
//   mkdir /tmp/wa && cp tools/world-outline.mjs /tmp/wa && cd /tmp/wa
//   npm install world-atlas@2.0.2 topojson-client@3.1.0
//   node world-outline.mjs > $REPO/pipeline/src/report/land-110m.path
//
// Output: one SVG path ring per line, already projected equirectangularly into a
// 360 x 180 box (x = lon + 180, y = 90 - lat), to 0.1 degree; repeated points dropped.
// Coordinates may lie outside the box where a ring crosses the antimeridian (see below).
import fs from 'fs';
import { feature } from 'topojson-client';

const topo = JSON.parse(fs.readFileSync('node_modules/world-atlas/land-110m.json'));
const land = feature(topo, topo.objects.land);
const geometries = land.type === 'FeatureCollection' ? land.features.map((f) => f.geometry) : [land.geometry];
// Rings that cross the antimeridian (Fiji, Chukotka) are unwrapped so that x stays
// continuous and drawn twice, 360 apart; the SVG box clips each copy to its half. A ring
// that goes all the way round (Antarctica) is closed along the bottom edge instead.
const fmt = (x, y) => `${x.toFixed(1)} ${y.toFixed(1)}`;
function path(points, dx) {
  let d = '';
  let last = '';
  for (const [x, y] of points) {
    const p = fmt(x + dx, y);
    if (p === last) continue;
    d += (d === '' ? 'M' : 'L') + p;
    last = p;
  }
  return d + 'Z';
}
const rings = [];
for (const g of geometries) {
  const polygons = g.type === 'Polygon' ? [g.coordinates] : g.coordinates;
  for (const polygon of polygons) {
    for (const ring of polygon) {
      const points = [];
      let offset = 0;
      let prevLon = null;
      for (const [lon, lat] of ring) {
        if (prevLon !== null && Math.abs(lon - prevLon) > 180) offset += prevLon > lon ? 360 : -360;
        prevLon = lon;
        points.push([lon + 180 + offset, 90 - lat]);
      }
      const xs = points.map(([x]) => x);
      const span = Math.max(...xs) - Math.min(...xs);
      if (span >= 359) {
        const [x0] = points[0];
        const [x1] = points[points.length - 1];
        points.push([x1, 180], [x0, 180]);
        const shift = Math.min(...xs) < 0 ? 360 : 0;
        rings.push(path(points, shift));
      } else if (Math.max(...xs) > 360 || Math.min(...xs) < 0) {
        rings.push(path(points, 0));
        rings.push(path(points, Math.max(...xs) > 360 ? -360 : 360));
      } else {
        rings.push(path(points, 0));
      }
    }
  }
}
process.stdout.write(rings.join('\n') + '\n');
