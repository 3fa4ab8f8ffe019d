import { Controller, Inject } from '@nestjs/common';
import { Empty, ImagesRebuild, RejectedError, subjects, type BaseImageStatus } from '@cairn/contracts';
import { Handles, type MessageOf } from '@cairn/service-kit';
import { Rebuilder } from './rebuilder.js';

/** The operator's requests (admin role): every image's state; a rebuild asked for. */
@Controller()
export class BaseImagesController {
  constructor(@Inject(Rebuilder) private readonly rebuilder: Rebuilder) {}

  @Handles(subjects.admin('images'), Empty, 'admin images')
  images(): Promise<BaseImageStatus[]> {
    return this.rebuilder.status();
  }

  @Handles(subjects.admin('images-rebuild'), ImagesRebuild, 'admin images-rebuild')
  rebuild(request: MessageOf<typeof ImagesRebuild>): Promise<BaseImageStatus[]> {
    const names = request.all ? this.rebuilder.names() : request.names;
    for (const name of names) {
      try {
        this.rebuilder.image(name);
      } catch (e) {
        throw new RejectedError('not-found', e instanceof Error ? e.message : String(e));
      }
    }
    return this.rebuilder.rebuild(names, request.force);
  }
}
