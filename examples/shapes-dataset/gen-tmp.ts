import { ShapesDataset } from './src/index';
for (const [imageSize, shapes] of [[24, 1], [32, 1], [48, 4]] as const) {
  const d = new ShapesDataset({ imageSize, shapesPerImage: { min: 1, max: shapes } });
  d.sample('train', 0);
  const c = process.cpuUsage();
  const t = performance.now();
  for (let i = 0; i < 2000; i++) d.sample('train', i);
  const cpu = process.cpuUsage(c);
  console.log(imageSize, shapes, ((performance.now() - t) / 2000).toFixed(3), 'ms/image wall', ((cpu.user + cpu.system) / 1000 / 2000).toFixed(3), 'ms/image cpu');
}
