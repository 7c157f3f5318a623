import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { InputMethod, Task } from '../../gen/baton/v1/task';
import { chooseExecutable } from './executable';

const file = (path: string) => ({ path, sha256: 'a'.repeat(64), sizeBytes: 1 });

describe('chooseExecutable', () => {
  it('runs the first file of a task without implementations, with the task input method', () => {
    const task = Task.fromPartial({
      name: 'acme',
      inputMethod: InputMethod.INPUT_METHOD_STDIN,
      files: [file('acme/tasks/init.sh'), file('acme/files/lib.sh')],
    });
    assert.deepEqual(chooseExecutable(task), { path: 'acme/tasks/init.sh', inputMethod: InputMethod.INPUT_METHOD_STDIN });
  });

  it('picks the first implementation whose requirements agents meet, with its own input method', () => {
    const task = Task.fromPartial({
      name: 'acme::x',
      inputMethod: InputMethod.INPUT_METHOD_STDIN,
      files: [file('acme/tasks/x.ps1'), file('acme/tasks/x.sh'), file('acme/tasks/x.rb')],
      implementations: [
        { path: 'acme/tasks/x.ps1', requirements: ['powershell'] },
        { path: 'acme/tasks/x.sh', requirements: ['shell'], inputMethod: InputMethod.INPUT_METHOD_ENVIRONMENT },
        { path: 'acme/tasks/x.rb', requirements: [] },
      ],
    });
    assert.deepEqual(chooseExecutable(task), { path: 'acme/tasks/x.sh', inputMethod: InputMethod.INPUT_METHOD_ENVIRONMENT });
  });

  it('falls back to the first implementation when none fits every agent (each agent decides), and refuses a task without files', () => {
    const task = Task.fromPartial({
      name: 'acme::win',
      files: [file('acme/tasks/win.ps1')],
      implementations: [{ path: 'acme/tasks/win.ps1', requirements: ['powershell'] }],
    });
    assert.deepEqual(chooseExecutable(task), { path: 'acme/tasks/win.ps1', inputMethod: InputMethod.INPUT_METHOD_UNSPECIFIED });
    assert.throws(() => chooseExecutable(Task.fromPartial({ name: 'acme::empty' })), /task acme::empty has no files to run/);
  });
});
