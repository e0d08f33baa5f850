// confirm.js - "are you sure?" in a modal <dialog>: keyboard usable (Tab
// stays inside, Escape cancels, Cancel has the focus first), and the focus
// goes back to the button that asked.
//
//   const yes = await confirmDialog.ask({ title, message, action: 'Mark dead' });

import { refocus } from './dom.js';

export function trapFocus(dialog) {
  dialog.addEventListener('keydown', (e) => {
    if (e.key !== 'Tab') return;
    const items = Array.from(dialog.querySelectorAll('button, input, select, textarea, [href], [tabindex]'))
      .filter((el) => !el.disabled && el.tabIndex >= 0 && el.getClientRects().length > 0);
    if (items.length === 0) return;
    const first = items[0];
    const last = items[items.length - 1];
    if (e.shiftKey && document.activeElement === first) {
      e.preventDefault();
      last.focus();
    } else if (!e.shiftKey && document.activeElement === last) {
      e.preventDefault();
      first.focus();
    }
  });
}

export function createConfirm({ dialog, title, message, ok, cancel }) {
  trapFocus(dialog);
  let answer = null;

  function ask(opts) {
    if (answer) answer(false); // one question at a time: a new one cancels the old
    const opener = document.activeElement;
    title.textContent = opts.title;
    message.textContent = opts.message;
    ok.textContent = opts.action;
    return new Promise((resolve) => {
      const finish = (yes) => {
        ok.removeEventListener('click', onOk);
        cancel.removeEventListener('click', onCancel);
        dialog.removeEventListener('cancel', onCancel);
        answer = null;
        if (dialog.open) dialog.close();
        refocus(opener);
        resolve(yes);
      };
      const onOk = () => finish(true);
      const onCancel = (e) => {
        e.preventDefault();
        finish(false);
      };
      answer = finish;
      ok.addEventListener('click', onOk);
      cancel.addEventListener('click', onCancel);
      dialog.addEventListener('cancel', onCancel);
      dialog.showModal();
      cancel.focus();
    });
  }

  return { ask };
}
