// A deep-zoom image viewer on a canvas: it fetches only the tiles on screen, at the resolution of the screen.
//
// Coordinates: an image pixel (x, y) appears at screen point (offsetX + x * scale, offsetY + y * scale),
// in CSS pixels of the canvas. Pixel (x, y) covers image coordinates x..x+1 and y..y+1, so a box drawn
// from 10 to 14 covers four pixels.

const MAX_SCALE = 64;
const CACHED_TILES = 600;

export class TileViewer {
  // info: {width, height, tile_size, levels} from GET .../tiles; tileUrl(level, column, row) returns an address.
  constructor(canvas, info, tileUrl) {
    this.canvas = canvas;
    this.info = info;
    this.tileUrl = tileUrl;
    this.scale = 1;
    this.offsetX = 0;
    this.offsetY = 0;
    this.brightness = 1;
    this.contrast = 1;
    this.overlays = [];
    this.tiles = new Map();
    this.pending = false;
    new ResizeObserver(() => this.resize()).observe(canvas);
    this.resize();
    this.fit();
  }

  resize() {
    const ratio = window.devicePixelRatio || 1;
    const { width, height } = this.canvas.getBoundingClientRect();
    this.canvas.width = Math.max(1, Math.round(width * ratio));
    this.canvas.height = Math.max(1, Math.round(height * ratio));
    this.redraw();
  }

  get viewWidth() { return this.canvas.width / (window.devicePixelRatio || 1); }

  get viewHeight() { return this.canvas.height / (window.devicePixelRatio || 1); }

  // Show the whole image, centred.
  fit() {
    const scale = Math.min(this.viewWidth / this.info.width, this.viewHeight / this.info.height) * 0.95;
    this.scale = scale > 0 ? scale : 1;
    this.offsetX = (this.viewWidth - this.info.width * this.scale) / 2;
    this.offsetY = (this.viewHeight - this.info.height * this.scale) / 2;
    this.redraw();
  }

  // Zoom by `factor` keeping the image point under (screenX, screenY) where it is.
  zoomAt(factor, screenX = this.viewWidth / 2, screenY = this.viewHeight / 2) {
    const minimum = Math.min(this.viewWidth / this.info.width, this.viewHeight / this.info.height) / 4;
    const scale = Math.min(MAX_SCALE, Math.max(minimum, this.scale * factor));
    const { x, y } = this.toImage(screenX, screenY);
    this.scale = scale;
    this.offsetX = screenX - x * scale;
    this.offsetY = screenY - y * scale;
    this.redraw();
  }

  // Centre image point (x, y) at `scale` screen pixels per image pixel.
  centreOn(x, y, scale) {
    this.scale = Math.min(MAX_SCALE, scale);
    this.offsetX = this.viewWidth / 2 - x * this.scale;
    this.offsetY = this.viewHeight / 2 - y * this.scale;
    this.redraw();
  }

  panBy(dx, dy) {
    this.offsetX += dx;
    this.offsetY += dy;
    this.redraw();
  }

  toImage(screenX, screenY) {
    return { x: (screenX - this.offsetX) / this.scale, y: (screenY - this.offsetY) / this.scale };
  }

  toScreen(x, y) {
    return { x: this.offsetX + x * this.scale, y: this.offsetY + y * this.scale };
  }

  // The canvas point of a mouse event, in CSS pixels.
  eventPoint(event) {
    const box = this.canvas.getBoundingClientRect();
    return { x: event.clientX - box.left, y: event.clientY - box.top };
  }

  redraw() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => { this.pending = false; this.draw(); });
  }

  draw() {
    const ctx = this.canvas.getContext("2d");
    const ratio = window.devicePixelRatio || 1;
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, this.viewWidth, this.viewHeight);
    // Brightness and contrast change only what is drawn here; the stored pixels are never touched.
    ctx.filter = `brightness(${this.brightness}) contrast(${this.contrast})`;
    ctx.imageSmoothingEnabled = this.scale < 2;
    this.drawLevel(ctx, this.info.levels - 1);
    const level = this.levelForScale();
    if (level < this.info.levels - 1) this.drawLevel(ctx, level);
    ctx.filter = "none";
    if (!this.overviewLoaded()) {
      // The first tiles of a large image wait for the server to decode it, which takes seconds.
      ctx.fillStyle = "#ccc";
      ctx.font = "16px system-ui, sans-serif";
      ctx.textAlign = "center";
      ctx.fillText("Loading the image…", this.viewWidth / 2, this.viewHeight / 2);
    }
    for (const overlay of this.overlays) overlay(ctx, this);
  }

  // Whether the one tile of the coarsest level, drawn under every other, has arrived.
  overviewLoaded() {
    const overview = this.tiles.get(`${this.info.levels - 1}/0/0`);
    return Boolean(overview && overview.complete && overview.naturalWidth);
  }

  levelForScale() {
    const level = Math.floor(Math.log2(1 / this.scale));
    return Math.max(0, Math.min(this.info.levels - 1, level));
  }

  drawLevel(ctx, level) {
    const factor = 2 ** level;
    const span = this.info.tile_size * factor;
    const columns = Math.ceil(this.info.width / span);
    const rows = Math.ceil(this.info.height / span);
    const topLeft = this.toImage(0, 0);
    const bottomRight = this.toImage(this.viewWidth, this.viewHeight);
    const first = { column: Math.max(0, Math.floor(topLeft.x / span)), row: Math.max(0, Math.floor(topLeft.y / span)) };
    const last = { column: Math.min(columns - 1, Math.floor(bottomRight.x / span)), row: Math.min(rows - 1, Math.floor(bottomRight.y / span)) };
    for (let row = first.row; row <= last.row; row += 1) {
      for (let column = first.column; column <= last.column; column += 1) {
        const tile = this.tile(level, column, row);
        if (!tile.complete || !tile.naturalWidth) continue;
        const corner = this.toScreen(column * span, row * span);
        // The last tile of a row or column covers the rest of the image, whatever its size at this level.
        const width = Math.min(span, this.info.width - column * span) * this.scale;
        const height = Math.min(span, this.info.height - row * span) * this.scale;
        ctx.drawImage(tile, corner.x, corner.y, width, height);
      }
    }
  }

  tile(level, column, row) {
    const key = `${level}/${column}/${row}`;
    let tile = this.tiles.get(key);
    if (tile) {
      this.tiles.delete(key);
      this.tiles.set(key, tile);
      return tile;
    }
    tile = new Image();
    tile.onload = () => this.redraw();
    tile.src = this.tileUrl(level, column, row);
    this.tiles.set(key, tile);
    if (this.tiles.size > CACHED_TILES) this.tiles.delete(this.tiles.keys().next().value);
    return tile;
  }
}
