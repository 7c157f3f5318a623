import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fromBinary } from '@bufbuild/protobuf';
import { FileDescriptorProtoSchema } from '@bufbuild/protobuf/wkt';
import { DescriptorIndex, loadProtoDescriptorSets } from './server-reflection';

describe('server reflection descriptors', () => {
  it('resolves every service a Baton server lists, each file under its canonical name with its imports', async () => {
    const index = new DescriptorIndex();
    for (const { set, bytes } of await loadProtoDescriptorSets()) index.addSet(bytes, set.namePrefix);
    const namesFor = (symbol: string): string[] => (index.fileContainingSymbol(symbol) ?? []).map((b) => fromBinary(FileDescriptorProtoSchema, b).name);
    assert.deepEqual(namesFor('grpc.health.v1.Health'), ['grpc/health/v1/health.proto']);
    assert.deepEqual(namesFor('grpc.reflection.v1.ServerReflection'), ['grpc/reflection/v1/reflection.proto']);
    assert.deepEqual(namesFor('grpc.reflection.v1alpha.ServerReflection'), ['grpc/reflection/v1alpha/reflection.proto']);
    const scheduler = namesFor('baton.v1.SchedulerService');
    assert.equal(scheduler[0], 'baton/v1/scheduler_service.proto');
    assert.ok(scheduler.includes('google/protobuf/timestamp.proto'), `imports travel with the file: ${scheduler.join(', ')}`);
    assert.equal(index.fileWithImports('health/v1/health.proto'), undefined, 'the folder name grpc-health-check ships it under is not served');
  });
});
