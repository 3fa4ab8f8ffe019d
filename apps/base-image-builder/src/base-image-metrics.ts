import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { IMAGE_STATES, type ImageState } from './core/image-record.js';

/** The service's own metrics, on the shared /metrics registry (service-kit's Ops). */
export class BaseImageMetrics {
  private readonly state: Gauge<'image' | 'state'>;
  private readonly lastSuccess: Gauge<'image'>;
  private readonly duration: Histogram<'image' | 'outcome'>;
  readonly jobs: Counter<'kind'>;

  constructor(registry: Registry) {
    this.state = new Gauge({
      name: 'cairn_base_image_state',
      help: "Each base image's state: 1 for the state it is in, 0 for the others",
      labelNames: ['image', 'state'],
      registers: [registry],
    });
    this.lastSuccess = new Gauge({
      name: 'cairn_base_image_last_success_timestamp_seconds',
      help: 'When each base image was last published',
      labelNames: ['image'],
      registers: [registry],
    });
    this.duration = new Histogram({
      name: 'cairn_base_image_build_duration_seconds',
      help: 'Base image rebuilds, from claim to publication or failure',
      labelNames: ['image', 'outcome'],
      buckets: [10, 30, 60, 120, 300, 600, 1200, 2400, 3600],
      registers: [registry],
    });
    this.jobs = new Counter({
      name: 'cairn_base_image_jobs_submitted_total',
      help: 'Cluster jobs the service submitted: build or probe',
      labelNames: ['kind'],
      registers: [registry],
    });
  }

  setState(image: string, state: ImageState): void {
    for (const s of IMAGE_STATES) this.state.set({ image, state: s }, s === state ? 1 : 0);
  }

  published(image: string, at: number): void {
    this.lastSuccess.set({ image }, at / 1000);
  }

  built(image: string, outcome: 'published' | 'failed', ms: number): void {
    this.duration.observe({ image, outcome }, ms / 1000);
  }
}
